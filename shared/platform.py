"""The composition root: every function builds its dependencies here, lazily, once per instance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import cache, cached_property
from typing import TYPE_CHECKING

import flask

from shared import logs
from shared.auth import CallerAuthenticator, ServiceAuthenticator, UserAuthenticator
from shared.catalog import Api, Catalog, load_catalog
from shared.config import Settings, get_settings, refuse_emulators
from shared.problems import Problem

if TYPE_CHECKING:
    from google.cloud import firestore

    from shared.access import AccessStore
    from shared.http import HttpApp, Router
    from shared.idempotency import IdempotencyStore
    from shared.intake import EventHandler, EventIntake
    from shared.services import ServiceClient
    from shared.uow import Outbox, Publisher, UnitOfWork


class Platform:
    def __init__(
        self, settings: Settings | None = None, publisher: Callable[[], Publisher] | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self._publisher = publisher

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog()

    @cached_property
    def db(self) -> firestore.Client:
        from shared.clients import firestore_client, new_firestore_client

        if self.settings is get_settings():
            return firestore_client()
        return new_firestore_client(self.settings.project_id)

    def publisher(self) -> Publisher:
        if self._publisher is not None:
            return self._publisher()
        from shared.clients import publisher

        client: Publisher = publisher()
        return client

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.settings.dedupe_retention_days)

    @cached_property
    def outbox(self) -> Outbox:
        from shared.uow import Outbox

        return Outbox(self.db, self.publisher, self.catalog, self.settings.project_id, self.retention)

    @cached_property
    def uow(self) -> UnitOfWork:
        from shared.uow import UnitOfWork

        return UnitOfWork(self.db, self.outbox)

    @cached_property
    def user_auth(self) -> UserAuthenticator:
        return UserAuthenticator(check_revoked=True)

    @cached_property
    def service_auth(self) -> ServiceAuthenticator:
        return ServiceAuthenticator(self.settings)

    @cached_property
    def caller_auth(self) -> CallerAuthenticator:
        return CallerAuthenticator(self.user_auth, self.service_auth)

    @cached_property
    def access(self) -> AccessStore:
        """This instance's access decisions; the Access Control API invalidates the same store."""
        from shared.access import access_store

        return access_store(self.db)

    @cached_property
    def services(self) -> ServiceClient:
        from shared.services import ServiceClient

        return ServiceClient(self.settings)

    @cached_property
    def idempotency(self) -> IdempotencyStore:
        from shared.idempotency import IdempotencyStore

        return IdempotencyStore(self.db, self.retention)

    def http_app(self, router: Router) -> HttpApp:
        from shared.http import HttpApp

        return HttpApp(router, lambda: self.caller_auth, lambda: self.idempotency, lambda: self.access)

    def intake(
        self, api: Api, handlers: Mapping[str, EventHandler], serialize_by_tenant: bool = False
    ) -> EventIntake:
        from shared.intake import EventIntake

        return EventIntake(
            api,
            self.catalog,
            handlers,
            self.uow,
            self.publisher,
            self.settings.project_id,
            self.settings.max_delivery_attempts,
            self.retention,
            serialize_by_tenant,
            self.settings.max_transient_attempts,
        )


@cache
def platform() -> Platform:
    settings = get_settings()
    logs.configure_logging(settings.project_id, settings.log_level)
    return Platform(settings)


def http_function(build: Callable[[Platform], Router]) -> Callable[[flask.Request], flask.Response]:
    """Wrap an API's router as a Cloud Function; nothing is built until the first request."""
    refuse_emulators()

    @cache
    def app() -> HttpApp:
        p = platform()
        return p.http_app(build(p))

    def entry(request: flask.Request) -> flask.Response:
        return app().handle(request)

    return entry


def events_function(
    api_module: str,
    build: Callable[[Platform], Mapping[str, EventHandler]],
    serialize_by_tenant: bool = False,
) -> Callable[[flask.Request], flask.Response]:
    """Wrap an API's event handlers as the push endpoint of all its subscriptions. With
    `serialize_by_tenant`, one instance handles one tenant's events one at a time (for handlers that
    all write a per-tenant document)."""
    refuse_emulators()

    @cache
    def intake() -> EventIntake:
        p = platform()
        return p.intake(p.catalog.api_by_module(api_module), build(p), serialize_by_tenant)

    def entry(request: flask.Request) -> flask.Response:
        from shared.http import problem_response

        try:
            platform().service_auth.authenticate(
                dict(request.headers), request.args.get("token"), request.url
            )
        except Problem as problem:
            return problem_response(problem, request.path)
        outcome = intake().handle(request.get_data())
        return flask.jsonify(outcome.body()), outcome.status  # type: ignore[return-value]

    return entry


def web_function(
    build: Callable[[Platform], Callable[[flask.Request], flask.Response]],
) -> Callable[[flask.Request], flask.Response]:
    """Wrap a public web handler (the portal's pages): no caller authentication, built on first use."""

    @cache
    def handler() -> Callable[[flask.Request], flask.Response]:
        return build(platform())

    def entry(request: flask.Request) -> flask.Response:
        return handler()(request)

    return entry


def service_function(
    build: Callable[[Platform], Callable[[flask.Request], flask.Response]],
) -> Callable[[flask.Request], flask.Response]:
    """Wrap a Cloud Tasks target or Cloud Scheduler job: only our service accounts may call it."""
    refuse_emulators()

    @cache
    def handler() -> Callable[[flask.Request], flask.Response]:
        return build(platform())

    def entry(request: flask.Request) -> flask.Response:
        from shared.http import problem_response

        try:
            platform().service_auth.authenticate(dict(request.headers), None, request.url)
            return handler()(request)
        except Problem as problem:
            return problem_response(problem, request.path)

    return entry

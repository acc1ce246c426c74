"""The HTTP kernel every API function shares: routing, authentication, tenant isolation, authorization,
validation, Idempotency-Key, and RFC 9457 problem+json for every error.

A route declares its permission next to its path; a route that declares none does not register. Any
path parameter named `tenant_id` scopes the route to that tenant: the kernel refuses a principal of
another tenant before the handler runs (404, so tenant ids cannot be probed), so no handler can forget.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from shared import logs
from shared.authz import ALL_PERMISSIONS, PUBLIC, Principal, anonymous
from shared.idempotency import REDACTED_HEADER, IdempotencyStore, StoredReply, without_secrets
from shared.problems import CONTENT_TYPE as PROBLEM_TYPE
from shared.problems import Problem, bad_request, forbidden, not_found, unauthenticated, validation_failed

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class Authenticator(Protocol):
    def authenticate(
        self, headers: Mapping[str, str], *, access_checks_revocation: bool = False
    ) -> Principal: ...


class Decision(Protocol):
    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def token_revoked(self) -> bool: ...


class Authorizer(Protocol):
    def decide(self, principal: Principal, permission: str, tenant_id: str) -> Decision: ...


@dataclass
class Reply:
    body: Any = None  # a pydantic model, a dict or list, or None for an empty body
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None  # a streamed body (NDJSON export) instead of `body`
    content_type: str = "application/json"


def json_pointer(location: tuple[int | str, ...]) -> str:
    """RFC 6901, as a URI fragment: '~' and '/' inside a key are escaped."""
    return "#" + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in location)


def validation_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {
            "pointer": json_pointer(err["loc"]),
            "detail": err["msg"],
            "type": err["type"],
            **({"in": prefix} if prefix else {}),
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


class RequestContext:
    def __init__(self, request: flask.Request, principal: Principal, params: dict[str, str]) -> None:
        self.request = request
        self.principal = principal
        self.params = params

    @property
    def tenant_id(self) -> str:
        return self.params["tenant_id"]

    def body(self, model: type[M]) -> M:
        if not self.request.is_json:
            raise Problem(415, "unsupported-media-type", "Send the request body as application/json.")
        try:
            data = json.loads(self.request.get_data() or b"null")
        except ValueError as exc:
            raise bad_request("The request body is not valid JSON.") from exc
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise validation_failed(validation_errors(exc, "body")) from exc

    def query(self, model: type[M]) -> M:
        raw = {key: values if len(values) > 1 else values[0] for key, values in self.request.args.lists()}
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise validation_failed(validation_errors(exc, "query")) from exc


Handler = Callable[[RequestContext], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    permission: str
    handler: Handler

    @property
    def tenant_scoped(self) -> bool:
        return "tenant_id" in self.pattern.groupindex


class Router:
    def __init__(self, api_slug: str) -> None:
        self.api_slug = api_slug
        self.routes: list[Route] = []

    def route(self, method: str, template: str, *, permission: str) -> Callable[[Handler], Handler]:
        if permission not in ALL_PERMISSIONS and permission != PUBLIC:
            raise ValueError(
                f"{method} {template}: unknown permission {permission!r} (declare it in shared.authz)"
            )
        pattern = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", template) + "/?$")

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method.upper(), template, pattern, permission, handler))
            return handler

        return register

    def get(self, template: str, *, permission: str) -> Callable[[Handler], Handler]:
        return self.route("GET", template, permission=permission)

    def post(self, template: str, *, permission: str) -> Callable[[Handler], Handler]:
        return self.route("POST", template, permission=permission)

    def patch(self, template: str, *, permission: str) -> Callable[[Handler], Handler]:
        return self.route("PATCH", template, permission=permission)

    def put(self, template: str, *, permission: str) -> Callable[[Handler], Handler]:
        return self.route("PUT", template, permission=permission)

    def delete(self, template: str, *, permission: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", template, permission=permission)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            raise Problem(
                405,
                "method-not-allowed",
                f"{method} is not allowed on this resource.",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise not_found(f"The resource {path}")


def problem_response(problem: Problem, instance: str | None = None) -> flask.Response:
    response = flask.Response(
        json.dumps(problem.to_dict(instance)), status=problem.status, content_type=PROBLEM_TYPE
    )
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


def _render(reply: Reply) -> tuple[str, dict[str, str]]:
    if reply.body is None:
        return "", reply.headers
    if isinstance(reply.body, BaseModel):
        return reply.body.model_dump_json(), reply.headers
    return json.dumps(reply.body, default=str), reply.headers


class HttpApp:
    """One API's HTTP function: `handle(request)` is what the Cloud Function entry point calls."""

    def __init__(
        self,
        router: Router,
        authenticator: Callable[[], Authenticator],
        idempotency: Callable[[], IdempotencyStore],
        access: Callable[[], Authorizer] | None = None,
    ) -> None:
        self.router = router
        self._authenticator = authenticator
        self._idempotency = idempotency
        self._access = access

    def handle(self, request: flask.Request) -> flask.Response:
        logs.bind_trace(request.headers.get("traceparent") or request.headers.get("X-Cloud-Trace-Context"))
        logs.tenant_id.set(None)
        try:
            return self._handle(request)
        except Problem as problem:
            return problem_response(problem, request.path)
        except Exception:
            log.exception("unhandled error", extra={"method": request.method, "path": request.path})
            return problem_response(
                Problem(500, "internal", "Something went wrong on our side; it has been logged."),
                request.path,
            )

    def _handle(self, request: flask.Request) -> flask.Response:
        route, params = self.router.match(request.method, request.path)
        if route.permission == PUBLIC:
            return self._respond(route.handler(RequestContext(request, anonymous(), params)))
        # Where the access decision runs, it refuses revoked tokens itself (shared.access).
        principal = self._authenticator().authenticate(
            dict(request.headers), access_checks_revocation=route.tenant_scoped and self._access is not None
        )
        if route.tenant_scoped:
            tenant_id = params["tenant_id"]
            if not principal.may_access_tenant(tenant_id):
                raise not_found(f"Tenant {tenant_id}")
            logs.tenant_id.set(tenant_id)
            if self._access is not None:
                # The Access Control API's decision: token roles, policies, groups, tenant and principal
                # state (suspended tenant, locked or deactivated principal).
                decision = self._access().decide(principal, route.permission, tenant_id)
                if decision.token_revoked:
                    raise unauthenticated("The token was revoked: sign in again.")
                if not decision.allowed:
                    raise forbidden(route.permission, decision.reason)
            elif not principal.can(route.permission):
                raise forbidden(route.permission)
        elif not principal.can(route.permission):
            raise forbidden(route.permission)
        context = RequestContext(request, principal, params)
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or key is None:
            return self._respond(route.handler(context))
        return self._idempotent(request, context, route, key)

    def _idempotent(
        self, request: flask.Request, context: RequestContext, route: Route, key: str
    ) -> flask.Response:
        store = self._idempotency()
        scope = f"{self.router.api_slug}\n{context.principal.uid}"
        fingerprint = store.fingerprint(request.method, request.path, request.get_data())
        owner = context.params.get("tenant_id") or context.principal.tenant_id
        stored = store.claim(scope, key, fingerprint, owner)
        if stored is not None:
            response = flask.Response(stored.body, status=stored.status, headers=stored.headers)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        try:
            reply = route.handler(context)
        except Problem as problem:
            body = json.dumps(problem.to_dict(request.path))
            headers = {**problem.headers, "Content-Type": PROBLEM_TYPE}
            store.complete(scope, key, StoredReply(problem.status, body, headers))
            raise
        except Exception:
            store.complete(scope, key, StoredReply(500, "", {}))
            raise
        if reply.stream is not None:
            raise TypeError("a streamed reply cannot be idempotent")
        # What is stored never holds a secret: AnsweredOnce values are kept as null.
        kept, redacted = without_secrets(reply.body)
        text, headers = _render(Reply(kept, reply.status, dict(reply.headers)))
        if redacted:
            headers[REDACTED_HEADER] = ", ".join(redacted)
        store.complete(
            scope, key, StoredReply(reply.status, text, {**headers, "Content-Type": reply.content_type})
        )
        return self._respond(reply)

    @staticmethod
    def _respond(reply: Reply) -> flask.Response:
        if reply.stream is not None:
            return flask.Response(
                reply.stream, status=reply.status, headers=reply.headers, content_type=reply.content_type
            )
        text, headers = _render(reply)
        return flask.Response(text, status=reply.status, headers=headers, content_type=reply.content_type)

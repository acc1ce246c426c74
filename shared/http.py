"""The HTTP kernel every API function shares: routing, authentication, tenant isolation, authorization,
validation, Idempotency-Key, and RFC 9457 problem+json for every error.

A route declares its permission next to its path; a route that declares none does not register. Any
path parameter named `tenant_id` scopes the route to that tenant: the kernel refuses a principal of
another tenant before the handler runs (404, so tenant ids cannot be probed), so no handler can forget.

A route also declares its request body model, query model and answer (what shared.contracts.openapi
documents), and the kernel holds the request to them before the handler runs: every path parameter
is an id (shared.contracts.ids), a route with no body refuses one, a JSON body is read with a bound on
nesting and validated strictly (no number for a timestamp, no "yes" for a boolean), and the handler
reads the body and query only through the declared models.
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
from shared.contracts import json_text
from shared.contracts.ids import is_id
from shared.idempotency import REDACTED_HEADER, IdempotencyStore, StoredReply, without_secrets
from shared.pagination import PageParams
from shared.problems import CONTENT_TYPE as PROBLEM_TYPE
from shared.problems import Problem, bad_request, forbidden, not_found, unauthenticated, validation_failed

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
OPENAPI_PATH = "/openapi.json"  # every HTTP function serves its OpenAPI document here, to anyone


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
    def __init__(
        self,
        request: flask.Request,
        principal: Principal,
        params: dict[str, str],
        route: Route | None = None,
    ) -> None:
        self.request = request
        self.principal = principal
        self.params = params
        self.route = route
        self._body: BaseModel | None = None
        self._query: BaseModel | None = None

    @property
    def tenant_id(self) -> str:
        return self.params["tenant_id"]

    def body(self, model: type[M] | None = None) -> M:
        """The body, validated against the route's declared model (`model`, if given, must be it)."""
        declared = self._declared("body", model)
        if self._body is None:
            self._body = read_json_body(self.request, declared)
        return self._body  # type: ignore[return-value]

    def query(self, model: type[M] | None = None) -> M:
        """The query string, validated against the route's declared query model."""
        declared = self._declared("query", model)
        if self._query is None:
            raw = {key: values if len(values) > 1 else values[0] for key, values in self.request.args.lists()}
            try:
                self._query = declared.model_validate(raw)
            except ValidationError as exc:
                raise validation_failed(validation_errors(exc, "query")) from exc
            if isinstance(self._query, PageParams):
                self._query.check_cursor()
        return self._query  # type: ignore[return-value]

    def _declared(self, part: str, model: type[M] | None) -> type[M]:
        if self.route is None:  # a context built by hand (tests, task endpoints): the model given
            if model is None:
                raise TypeError(f"no route declares this request's {part}")
            return model
        declared = getattr(self.route, part)
        if not (isinstance(declared, type) and issubclass(declared, BaseModel)):
            raise TypeError(f"{self.route.method} {self.route.template} declares no {part} model")
        if model is not None and model is not declared:
            raise TypeError(
                f"{self.route.method} {self.route.template} declares {part}={declared.__name__}, "
                f"not {model.__name__}"
            )
        return declared  # type: ignore[return-value]


def _strict(model: type[BaseModel]) -> bool:
    """Request bodies are validated strictly unless their model says otherwise (strict=False)."""
    return model.model_config.get("strict") is not False


def parse_json(raw: bytes) -> Any:
    """JSON text of a request: 400 when it is not JSON or nested deeper than the kernel allows."""
    try:
        return json_text.loads(raw)
    except json_text.JsonTooDeep as exc:
        raise bad_request(f"The request body is {exc}.", max_depth=exc.max_depth) from exc
    except json_text.NotText as exc:
        raise bad_request(f"The request body holds {exc}.") from exc
    except ValueError as exc:
        raise bad_request("The request body is not valid JSON.") from exc


def validate_json(raw: bytes, model: type[M]) -> M:
    """A JSON body checked by `parse_json`, then validated by `model` (422 with a pointer per field)."""
    parse_json(raw)
    try:
        return model.model_validate_json(raw, strict=_strict(model))
    except ValidationError as exc:
        raise validation_failed(validation_errors(exc, "body")) from exc


def _optional(model: type[BaseModel]) -> bool:
    return not any(f.is_required() for f in model.model_fields.values())


def read_json_body(request: flask.Request, model: type[M]) -> M:
    raw = request.get_data()
    if not raw.strip() and _optional(model):
        return model()  # every field has a default: no body means the defaults
    if not request.is_json:
        raise Problem(415, "unsupported-media-type", "Send the request body as application/json.")
    return validate_json(raw or b"null", model)


def refuse_body(request: flask.Request) -> None:
    """A route that declares no body takes none (an empty JSON object is accepted as none)."""
    raw = request.get_data()
    if not raw.strip():
        return
    if parse_json(raw) != {}:
        raise Problem(
            400, "unexpected-body", "This request takes no body: send none (or an empty JSON object)."
        )


@dataclass(frozen=True)
class Upload:
    """A body the handler reads itself (a file upload, a signed report), with its media types and, for
    JSON, the model it is validated against once its signature is checked (for the documentation)."""

    media_types: tuple[str, ...]
    model: type[BaseModel] | None = None
    description: str = ""


Handler = Callable[[RequestContext], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    permission: str
    handler: Handler
    body: type[BaseModel] | Upload | None = None
    query: type[BaseModel] | None = None
    response: Any = None  # a pydantic model (or a type pydantic can describe) of the success body
    status: tuple[int, ...] = (200,)  # the success statuses; 204 has no body
    summary: str | None = None
    etag: bool = False  # answers ETag and honours If-Match
    media_type: str = "application/json"  # of the success body

    @property
    def tenant_scoped(self) -> bool:
        return "tenant_id" in self.pattern.groupindex

    @property
    def params(self) -> list[str]:
        return list(self.pattern.groupindex)


class Router:
    def __init__(self, api_slug: str) -> None:
        self.api_slug = api_slug
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        template: str,
        *,
        permission: str,
        body: type[BaseModel] | Upload | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int | tuple[int, ...] = 200,
        summary: str | None = None,
        etag: bool = False,
        media_type: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        if permission not in ALL_PERMISSIONS and permission != PUBLIC:
            raise ValueError(
                f"{method} {template}: unknown permission {permission!r} (declare it in shared.authz)"
            )
        pattern = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", template) + "/?$")
        statuses = (status,) if isinstance(status, int) else status

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method.upper(),
                    template,
                    pattern,
                    permission,
                    handler,
                    body,
                    query,
                    response,
                    statuses,
                    summary,
                    etag,
                    media_type,
                )
            )
            return handler

        return register

    def get(self, template: str, *, permission: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", template, permission=permission, **declared)

    def post(self, template: str, *, permission: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", template, permission=permission, **declared)

    def patch(self, template: str, *, permission: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", template, permission=permission, **declared)

    def put(self, template: str, *, permission: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", template, permission=permission, **declared)

    def delete(self, template: str, *, permission: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", template, permission=permission, **declared)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                params = found.groupdict()
                for value in params.values():
                    # Before authentication and any datastore call: a Firestore-reserved, oversized or
                    # dotted id can name nothing that exists.
                    if not is_id(value):
                        raise not_found(f"The resource {path}")
                return route, params
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


def _prepare(context: RequestContext) -> None:
    """Hold the request to the route's declarations before the handler (and its datastore calls)."""
    route = context.route
    assert route is not None
    if route.body is None:
        refuse_body(context.request)
    elif not isinstance(route.body, Upload):
        context.body()
    if route.query is not None:
        context.query()


def _run(route: Route, context: RequestContext) -> Reply:
    """The handler's reply to a request held to the route's declarations, its body held to the declared
    response model (a dict is validated by it): what the API answers is what its document says. Runs
    after the Idempotency-Key claim, so a refused request is replayed like any other answer."""
    _prepare(context)
    reply = route.handler(context)
    model = route.response
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or reply.status not in route.status:
        return reply
    if reply.body is not None and not isinstance(reply.body, model):
        reply.body = model.model_validate(reply.body)
    return reply


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
        self._document: str | None = None

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
        if request.method == "GET" and request.path.rstrip("/") == OPENAPI_PATH:
            return self._openapi()
        route, params = self.router.match(request.method, request.path)
        if route.permission == PUBLIC:
            context = RequestContext(request, anonymous(), params, route)
            return self._respond(_run(route, context))
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
        context = RequestContext(request, principal, params, route)
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or key is None:
            return self._respond(_run(route, context))
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
            reply = _run(route, context)
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

    def _openapi(self) -> flask.Response:
        if self._document is None:
            from shared.contracts.openapi import document, render

            self._document = render(document(self.router))
        return flask.Response(self._document, content_type="application/json")

    @staticmethod
    def _respond(reply: Reply) -> flask.Response:
        if reply.stream is not None:
            return flask.Response(
                reply.stream, status=reply.status, headers=reply.headers, content_type=reply.content_type
            )
        text, headers = _render(reply)
        return flask.Response(text, status=reply.status, headers=headers, content_type=reply.content_type)

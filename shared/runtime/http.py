"""HTTP conventions every service follows: health, metrics, RFC 9457 problem details, and how
the OpenAPI documents declare those problems (`problems`) and the inputs no lenient coercion may
read (`StrictDate`, `StrictAwareDatetime`, `StrictQueryBool`)."""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.runtime.failures import describe, is_transient
from shared.runtime.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS, REJECTED_REQUESTS

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
ReadinessCheck = Callable[[], Awaitable[bool]]


class Problem(Exception):
    """An error answered as `application/problem+json` (RFC 9457)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = dict(headers or {})
        self.extensions = extensions


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, the body of every error answer (`application/problem+json`).

    Some problems add members: `errors` (422: one entry per field, with its `location`, `message`
    and `type`), `reason` (403), `state`, `action` and `allowed_actions` (409 in processing)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(
        default="about:blank",
        description="`about:blank`, or `urn:dvc:problem:<reason>` for a counted refusal",
    )
    title: str = Field(description="Short summary: Vietnamese, with the English in brackets")
    status: int = Field(ge=400, le=599)
    instance: str | None = Field(default=None, description="The request's path")
    detail: str | None = None


_PROBLEM_SCHEMA = ProblemDetails.model_json_schema()
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "The request cannot be read (malformed body, header or cursor)",
    401: "No valid credentials (header `WWW-Authenticate` says which)",
    403: "The caller's role or unit may not do this",
    404: "Not found",
    409: "Not possible in the resource's current state, or it changed meanwhile",
    413: "The request body is too large",
    415: "The body's media type, or an uploaded file's type, is not accepted",
    422: "The request does not match the schema (`errors` lists the fields), or a business rule "
    "refuses it",
    429: "Too many requests from this client: wait as `Retry-After` says",
    503: "A platform component is unreachable: nothing changed, try again after `Retry-After`",
}
_PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication scheme (RFC 6750 / RFC 9110)",
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def problems(
    *statuses: int, notes: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` entries of the problems an operation may answer, each documented
    as `application/problem+json` with the `Problem` schema; `notes` adds what a status means for
    this operation (e.g. `{409: "Rated already"}`) to the generic description."""
    notes = dict(notes or {})
    if unknown := set(notes) - set(statuses):
        raise ValueError(f"notes for statuses not listed: {sorted(unknown)}")
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = PROBLEM_DESCRIPTIONS[status]
        if status in notes:
            description = f"{description}. {notes[status]}"
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
        }
        if status in _PROBLEM_HEADERS:
            response["headers"] = _PROBLEM_HEADERS[status]
        responses[status] = response
    return responses


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its `$defs` written in place, for a schema the OpenAPI document
    holds outside `components` (e.g. the `contentSchema` of a JSON part in a multipart body)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if isinstance(ref := node.get("$ref"), str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(definitions[ref.removeprefix("#/$defs/")]), **resolve(rest)}
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


# -- inputs read strictly ------------------------------------------------------------------------
# pydantic's lax mode reads a number as seconds since 1970 for a date or a date-time, and "0",
# "1", "yes", "off"... as booleans; the documents say `format: date`, `date-time`, `boolean`.
# `Strict()` cannot be used for dates: FastAPI validates the decoded JSON (Python mode), where a
# strict date accepts only `date` objects, never the ISO text the document asks for.

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_text(value: Any) -> Any:
    if isinstance(value, int | float | Decimal) or (
        isinstance(value, str) and _NUMBER.fullmatch(value)
    ):
        raise ValueError("an ISO 8601 text is expected, not a number")
    return value


def _not_before_epoch(value: datetime) -> datetime:
    if value < EPOCH:
        raise ValueError("must be 1970-01-01T00:00:00Z or later")
    return value


def _query_bool(value: Any) -> Any:
    if isinstance(value, str):
        if value.lower() not in {"true", "false"}:
            raise ValueError("`true` or `false` is expected")
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError("`true` or `false` is expected")
    return value


StrictDate = Annotated[date, BeforeValidator(_iso_text)]
StrictAwareDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
# A moment in the Unix era: what Kafka's timestamps (and the replays that read them) can reach.
UnixEraDatetime = Annotated[StrictAwareDatetime, AfterValidator(_not_before_epoch)]
StrictQueryBool = Annotated[bool, BeforeValidator(_query_bool)]


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# The exception classes an outage raises (`shared.runtime.failures.is_transient` decides per
# instance).
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    PyMongoError,
    KafkaError,
    httpx.TransportError,
    TimeoutError,
    ConnectionError,
)


def _unavailable(request: Request) -> Response:
    return problem_response(
        request,
        503,
        "Hệ thống tạm thời gián đoạn (temporarily unavailable)",
        "A platform component is unreachable; nothing was changed by this request "
        "unless it said so. Please try again in a few seconds.",
        headers={"Retry-After": "5"},
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            request,
            exc.status,
            exc.title,
            exc.detail,
            type_=exc.type,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else None
        title = _REASONS.get(exc.status_code, "Error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # The router hands a wrong-method request to the *first* route of the path only, so
            # its `Allow` lists that route's methods; RFC 9110 wants every method of the path.
            allowed = _allowed_methods(request)
            if allowed:
                headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
                headers["Allow"] = ", ".join(allowed)
        return problem_response(request, exc.status_code, title, detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        return problem_response(
            request,
            422,
            "Dữ liệu không hợp lệ (invalid request)",
            "The request does not match the expected schema.",
            errors=errors,
        )

    async def _infrastructure(request: Request, exc: Exception) -> Response:
        """The database, the broker or a peer is away: 503, logged in one line. (Registered by
        class, so Starlette answers it without re-raising: no traceback per request during an
        outage.) Anything else of these classes is an ordinary 500."""
        if not is_transient(exc):
            return await _unexpected(request, exc)
        log.warning(
            "%s %s: infrastructure unavailable (%s)",
            request.method,
            request.url.path,
            describe(exc),
        )
        return _unavailable(request)

    for infrastructure_error in INFRASTRUCTURE_ERRORS:
        app.add_exception_handler(infrastructure_error, _infrastructure)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if is_transient(exc):  # the database or the broker is away: try again shortly
            log.warning(
                "%s %s: infrastructure unavailable (%s)",
                request.method,
                request.url.path,
                describe(exc),
            )
            return _unavailable(request)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            500,
            "Lỗi hệ thống (internal error)",
            "The request could not be completed; it has been logged.",
        )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app accepts on the request's path (sorted)."""
    methods: set[str] = set()
    for route in _flat_routes(request.app.router.routes):
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods.update(route_methods)
    return sorted(methods)


def _flat_routes(routes: Sequence[BaseRoute]) -> Iterable[Any]:
    """The routes as matched, included routers unfolded: FastAPI ≥ 0.16x keeps each included
    router as one entry (`iter_route_contexts` unfolds it); older versions copy the routes."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return routes
    return iter_route_contexts(routes)


_UNSAFE_IN_FALLBACK = str.maketrans({"đ": "d", "Đ": "D", '"': "_", "\\": "_"})


def content_disposition(file_name: str, *, inline: bool = False) -> str:
    """A `Content-Disposition` value for any file name (RFC 6266 / RFC 5987): an ASCII
    `filename="..."` fallback (accents dropped, other non-ASCII, `"` and `\\` replaced) and the
    exact name as `filename*=utf-8''<percent-encoded UTF-8>`. Control characters, which no
    header may carry, become `_` in both."""
    name = "".join("_" if unicodedata.category(c) == "Cc" else c for c in file_name) or "file"
    fallback = unicodedata.normalize("NFKD", name.translate(_UNSAFE_IN_FALLBACK))
    fallback = "".join(c if c.isascii() else "_" for c in fallback if not unicodedata.combining(c))
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=utf-8''{quote(name, safe='')}"


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


class BodySizeLimit:
    """Refuses request bodies over a limit with a 413 problem before any of it is parsed or the
    caller authenticated, whether or not Content-Length is sent (pure ASGI: the count runs as the
    body streams in; nothing is buffered here).

    `max_bytes` holds for every route but those of `larger`, route templates (e.g.
    `/api/v1/dossiers/{code}/supplements`) with the limit of their uploads.
    """

    def __init__(
        self, app: ASGIApp, *, service: str, max_bytes: int, larger: Mapping[str, int] = {}
    ) -> None:
        self.app = app
        self.service = service
        self.max_bytes = max_bytes
        self.larger = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"), limit)
            for path, limit in larger.items()
        ]

    def limit_for(self, path: str) -> int:
        return next(
            (limit for pattern, limit in self.larger if pattern.match(path)), self.max_bytes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        received = 0
        response_started = refused = False

        async def counting_receive() -> Message:
            # Over the limit, the 413 goes out at once and the app is told the client left: it
            # stops reading, and whatever it answers then is dropped.
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not response_started and not refused:
                        refused = True
                        await self._refuse(scope, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        REJECTED_REQUESTS.labels(self.service, "body-too-large").inc()
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Dữ liệu gửi lên quá lớn (content too large)",
                "status": 413,
                "detail": f"The request body exceeds {limit} bytes.",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequestMetricsMiddleware:
    """Counts requests and observes latency by route template (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(self.service, method, route).observe(
                time.perf_counter() - started
            )


def _route_template(scope: Scope) -> str:
    """The matched route's template (the router records it in the scope), never the raw path:
    raw paths would make one time series per dossier code."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


def install_operational_routes(
    app: FastAPI,
    checks: Mapping[str, ReadinessCheck],
    before_metrics: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """`/health/live`, `/health/ready` (every check must pass) and `/metrics`, which awaits
    `before_metrics()` first (gauges computed at scrape time)."""

    @app.get("/health/live", tags=["operations"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        tags=["operations"],
        responses=problems(503, notes={503: "Or a dependency failed its check (`checks`)"}),
    )
    async def ready(request: Request) -> Response:
        results = {name: await _safe(check) for name, check in checks.items()}
        if all(results.values()):
            return JSONResponse({"status": "ok", "checks": results})
        failing = ", ".join(name for name, ok in results.items() if not ok)
        return problem_response(
            request, 503, "Not ready", f"Unreachable: {failing}", checks=results
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        if before_metrics is not None:
            await before_metrics()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _safe(check: ReadinessCheck) -> bool:
    try:
        return bool(await check())
    except Exception:
        log.warning("readiness check failed", exc_info=True)
        return False

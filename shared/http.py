"""HTTP conventions every service follows: health, metrics, RFC 9457 problem details."""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.failures import describe, is_transient
from shared.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS, REJECTED_REQUESTS

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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if is_transient(exc):  # the database or the broker is away: try again shortly
            log.warning(
                "%s %s: infrastructure unavailable (%s)",
                request.method,
                request.url.path,
                describe(exc),
            )
            return problem_response(
                request,
                503,
                "Hệ thống tạm thời gián đoạn (temporarily unavailable)",
                "A platform component is unreachable; nothing was changed by this request "
                "unless it said so. Please try again in a few seconds.",
                headers={"Retry-After": "5"},
            )
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

    @app.get("/health/ready", tags=["operations"])
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

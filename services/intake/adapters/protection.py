"""Request limits: body size, rate limits per client, throttling of wrong tracking secrets.

Rate limits are counted in this replica's memory (moving windows from the `limits` library):
with N replicas behind a load balancer a client gets up to N times the limit. A shared store
(Redis) would make them global; the gateway in front of the platform usually limits too.
"""

from __future__ import annotations

from fastapi import Request
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake.metrics import REJECTED_REQUESTS, THROTTLED_REQUESTS, WRONG_TRACKING_SECRETS
from shared.http import Problem


def client_address(request: Request) -> str:
    """The client's address as seen by this service (the proxy in front sets it right)."""
    return request.client.host if request.client else "unknown"


class RateLimits:
    def __init__(
        self,
        *,
        submissions_per_minute: int,
        tracking_per_minute: int,
        wrong_secrets_allowed: int,
        wrong_secret_window_seconds: int,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._submission = RateLimitItemPerMinute(submissions_per_minute)
        self._tracking = RateLimitItemPerMinute(tracking_per_minute)
        self._wrong_secret = RateLimitItemPerSecond(
            wrong_secrets_allowed, wrong_secret_window_seconds
        )

    def check_submission(self, client: str) -> None:
        self._hit(self._submission, "submission", client)

    def check_tracking(self, client: str) -> None:
        if not self._limiter.test(self._wrong_secret, "wrong-secret", client):
            THROTTLED_REQUESTS.labels("intake", "wrong-secret").inc()
            raise _too_many(
                "Quá nhiều lần nhập sai mã bí mật; vui lòng thử lại sau "
                "(too many wrong tracking secrets; try again later)",
                self._wrong_secret.get_expiry(),
            )
        self._hit(self._tracking, "tracking", client)

    def record_wrong_secret(self, client: str) -> None:
        WRONG_TRACKING_SECRETS.inc()
        self._limiter.hit(self._wrong_secret, "wrong-secret", client)

    def _hit(self, item: RateLimitItemPerMinute, name: str, client: str) -> None:
        if not self._limiter.hit(item, name, client):
            THROTTLED_REQUESTS.labels("intake", name).inc()
            raise _too_many(
                "Quá nhiều yêu cầu; vui lòng thử lại sau (too many requests; try again later)",
                item.get_expiry(),
            )


def _too_many(detail: str, retry_after: int) -> Problem:
    return Problem(
        429,
        "Quá nhiều yêu cầu (too many requests)",
        detail,
        headers={"Retry-After": str(retry_after)},
    )


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413, whether or not Content-Length is sent.

    Pure ASGI, so nothing is buffered: the count runs as the body streams in.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        import json

        REJECTED_REQUESTS.labels("intake", "body-too-large").inc()
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Dữ liệu gửi lên quá lớn (content too large)",
                "status": 413,
                "detail": f"The request body exceeds {self.max_bytes} bytes.",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass

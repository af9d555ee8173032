"""Request limits: rate limits per client, throttling of wrong tracking secrets (body sizes are
limited for every service by `shared.runtime.http.BodySizeLimit`).

Rate limits are counted in this replica's memory (moving windows from the `limits` library):
with N replicas behind a load balancer a client gets up to N times the limit. A shared store
(Redis) would make them global; the gateway in front of the platform usually limits too.
"""

from __future__ import annotations

from fastapi import Request
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from services.intake.metrics import THROTTLED_REQUESTS, WRONG_TRACKING_SECRETS
from shared.runtime.http import Problem


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

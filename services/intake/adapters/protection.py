"""Request limits: rate limits per client, throttling of wrong tracking secrets (body sizes are
limited for every service by `shared.runtime.http.BodySizeLimit`).

Rate limits are counted in this replica's memory (moving windows): with N replicas behind a load
balancer a client gets up to N times the limit. A shared store (Redis) would make them global;
the gateway in front of the platform usually limits too.

The windows are kept here rather than by the `limits` library's `MemoryStorage`, which starts a
thread (`threading.Timer`) every 10 ms while it holds entries and copies each key's list of
entries in it: 0.2-0.3 ms of CPU per hit when hit 100 times a second in an event loop (1,000
hits, 0 or 5,000 entries held), a tenth of the intake's CPU per dossier at that rate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from fastapi import Request

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
        self._submission = MovingWindow(submissions_per_minute, 60)
        self._tracking = MovingWindow(tracking_per_minute, 60)
        self._wrong_secret = MovingWindow(wrong_secrets_allowed, wrong_secret_window_seconds)

    def check_submission(self, client: str) -> None:
        self._hit(self._submission, "submission", client)

    def check_tracking(self, client: str) -> None:
        if not self._wrong_secret.test(client):
            THROTTLED_REQUESTS.labels("intake", "wrong-secret").inc()
            raise _too_many(
                "Quá nhiều lần nhập sai mã bí mật; vui lòng thử lại sau "
                "(too many wrong tracking secrets; try again later)",
                self._wrong_secret.seconds,
            )
        self._hit(self._tracking, "tracking", client)

    def record_wrong_secret(self, client: str) -> None:
        WRONG_TRACKING_SECRETS.inc()
        self._wrong_secret.hit(client)

    def _hit(self, window: MovingWindow, name: str, client: str) -> None:
        if not window.hit(client):
            THROTTLED_REQUESTS.labels("intake", name).inc()
            raise _too_many(
                "Quá nhiều yêu cầu; vui lòng thử lại sau (too many requests; try again later)",
                window.seconds,
            )


class MovingWindow:
    """At most `limit` hits per key within any `seconds` (the hits of the last `seconds` count).

    Each key keeps the instants of its recent hits, oldest first; instants that left the window
    are dropped when the key is next used, and keys without a recent hit once a window (so that
    clients that went away do not stay in memory)."""

    def __init__(
        self, limit: int, seconds: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._swept_at = clock()

    def test(self, key: str) -> bool:
        """Whether a hit of `key` would be allowed now (counts nothing)."""
        return len(self._recent(key, self._clock())) < self.limit

    def hit(self, key: str) -> bool:
        """Count a hit of `key` and return True, or return False (counting nothing) when its
        window is full."""
        now = self._clock()
        self._sweep(now)
        recent = self._recent(key, now)
        if len(recent) >= self.limit:
            return False
        self._hits.setdefault(key, recent).append(now)
        return True

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        return hits

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < self.seconds:
            return
        self._swept_at = now
        for key in [
            k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.seconds
        ]:
            del self._hits[key]


def _too_many(detail: str, retry_after: int) -> Problem:
    return Problem(
        429,
        "Quá nhiều yêu cầu (too many requests)",
        detail,
        headers={"Retry-After": str(retry_after)},
    )

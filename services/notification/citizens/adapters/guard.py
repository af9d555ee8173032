"""Provider protection around a channel: rate limit, circuit breaker, latency metrics."""

from __future__ import annotations

import time

from services.notification import metrics
from services.notification.adapters.breaker import BreakerState, CircuitBreaker
from services.notification.citizens.adapters.rate_limit import TokenBucket
from services.notification.citizens.domain.ports import (
    Channel,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)


class BreakerOpenError(TransientSendError):
    """The provider's breaker is open: not called, try again after `retry_after` seconds."""

    def __init__(self, provider: str, retry_after: float) -> None:
        super().__init__(f"circuit open for {provider}")
        self.retry_after = retry_after


class GuardedChannel:
    def __init__(
        self,
        inner: Channel,
        *,
        bucket: TokenBucket,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.provider = inner.provider
        self.bucket = bucket
        self.breaker = CircuitBreaker(
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            on_change=self._breaker_changed,
        )
        metrics.BREAKER_STATE.labels(self.provider).set(
            metrics.BREAKER_STATE_VALUES[self.breaker.state]
        )

    def _breaker_changed(self, state: BreakerState) -> None:
        metrics.BREAKER_STATE.labels(self.provider).set(metrics.BREAKER_STATE_VALUES[state])
        metrics.BREAKER_TRANSITIONS.labels(self.provider, state.value).inc()

    async def send(self, message: OutgoingMessage) -> SendResult:
        if not self.breaker.allow():
            raise BreakerOpenError(self.provider, self.breaker.retry_after())
        waited = await self.bucket.acquire()
        if waited:
            metrics.RATE_LIMITED_SECONDS.labels(self.provider).inc(waited)
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = await self.inner.send(message)
        except TransientSendError:
            outcome = "transient"
            self.breaker.record_failure()
            raise
        except PermanentSendError:
            outcome = "permanent"
            self.breaker.record_success()  # the provider answered; the message was refused
            raise
        except Exception:
            outcome = "transient"
            self.breaker.record_failure()
            raise
        finally:
            metrics.PROVIDER_LATENCY.labels(self.provider, outcome).observe(
                time.perf_counter() - started
            )
        self.breaker.record_success()
        return result

    async def close(self) -> None:
        await self.inner.close()

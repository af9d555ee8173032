"""Circuit breaker and token bucket state machines, with a fake clock."""

from __future__ import annotations

from services.notification.adapters.breaker import BreakerState, CircuitBreaker
from services.notification.citizens.adapters.rate_limit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == 10


def test_breaker_half_opens_after_the_timeout_and_lets_one_trial_through() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(
        failure_threshold=1, reset_timeout=10, clock=clock, on_change=changes.append
    )
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state == BreakerState.HALF_OPEN
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one at a time
    breaker.record_success()
    assert breaker.state == BreakerState.CLOSED and breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_trial_opens_the_breaker_again_for_a_full_timeout() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == BreakerState.OPEN and breaker.retry_after() == 5


def test_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, capacity=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.try_acquire() == 0.1  # one token every 100 ms
    clock.now += 0.05
    assert abs(bucket.try_acquire() - 0.05) < 1e-9
    clock.now += 0.05
    assert bucket.try_acquire() == 0
    clock.now += 100  # never more than the capacity
    assert [bucket.try_acquire() for _ in range(4)][-1] > 0


async def test_acquire_waits_for_the_next_token() -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    bucket = TokenBucket(rate=2, capacity=1, clock=clock)
    assert await bucket.acquire(sleep) == 0
    assert await bucket.acquire(sleep) == 0.5
    assert slept == [0.5]


def test_a_zero_rate_means_unlimited() -> None:
    bucket = TokenBucket(rate=0, capacity=1)
    assert all(bucket.try_acquire() == 0 for _ in range(1000))

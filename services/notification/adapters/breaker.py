"""A circuit breaker per provider: stop calling a provider that keeps failing, probe it later.

closed --(N consecutive failures)--> open --(reset timeout)--> half-open
half-open --(trial succeeds)--> closed;  half-open --(trial fails)--> open
While open, calls are refused at once (the delivery is rescheduled), so a dead gateway costs no
time-outs and its deliveries reach their retry bound, then fall back to the next channel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_trials: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_trials = half_open_trials
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0

    @property
    def state(self) -> BreakerState:
        if (
            self._state == BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 if it would now)."""
        if self.state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go to the provider now? (Counts a half-open trial when it may.)"""
        state = self.state
        if state == BreakerState.CLOSED:
            return True
        if state == BreakerState.HALF_OPEN and self._trials < self.half_open_trials:
            self._trials += 1
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        if self._state != BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        if self._state == BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._state == BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._open()

    def trip(self) -> None:
        """Open now (e.g. restoring a state saved before a restart)."""
        self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state == BreakerState.CLOSED:
            self._failures = 0
        self._trials = 0
        if state != self._state:
            self._state = state
            if self._on_change:
                self._on_change(state)

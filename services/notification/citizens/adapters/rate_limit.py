"""A token bucket per provider: at most `rate` messages a second, bursts up to `capacity`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(
        self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`rate` tokens a second (0 or less: unlimited), holding at most `capacity`."""
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def try_acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens` if available and return 0; otherwise take nothing and return the
        seconds to wait until they would be."""
        if self.unlimited:
            return 0.0
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= tokens - 1e-9:  # float rounding of the refill
            self._tokens = max(0.0, self._tokens - tokens)
            return 0.0
        return (tokens - self._tokens) / self.rate

    async def acquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> float:
        """Wait until a token is available and take it; returns the seconds waited."""
        waited = 0.0
        while (wait := self.try_acquire()) > 0:
            await sleep(wait)
            waited += wait
        return waited

"""The platform's one retry schedule: exponential backoff with "equal jitter" (half the step
fixed, half random), so that delays still grow while replicas retrying together spread out.

Used by the consumers' in-process retries (`shared.runtime.consumer.RetryPolicy`), and by the
workers whose retries are persisted as a due time (notification's deliveries and portal sync).
(A retry library such as stamina wraps a call in a loop; these schedules are also stored in the
database between attempts, so the schedule itself is what is shared.)
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(
    failed_attempts: int,
    *,
    base: float,
    cap: float,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after the n-th failed attempt: `base`·2ⁿ⁻¹ capped at `cap`, half of it
    fixed and half random."""
    step = min(cap, base * 2.0 ** min(max(failed_attempts - 1, 0), 60))
    return step / 2 + rand(0, step / 2)

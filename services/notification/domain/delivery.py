"""Delivery statuses and the retry schedule (pure).

created -> sending -> sent -> delivered, or technical-failure / permanent-failure.
`created` with `attempts > 0` is a retry waiting for its `next_attempt_at`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

CREATED = "created"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
TECHNICAL_FAILURE = "technical-failure"
PERMANENT_FAILURE = "permanent-failure"

FAILURES = frozenset({TECHNICAL_FAILURE, PERMANENT_FAILURE})
FINAL = frozenset({DELIVERED, *FAILURES})


def is_final(status: str, channel: str) -> bool:
    """Final outcomes are published. E-mail has no delivery receipts, so `sent` ends it; an SMS
    waits for the gateway's receipt; the inbox is delivered when stored."""
    return status in FINAL or (status == SENT and channel == "email")


def backoff(
    failed_attempts: int,
    *,
    base: float,
    cap: float,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random, so delays
    still grow while replicas retrying together spread out."""
    step = min(cap, base * 2 ** max(failed_attempts - 1, 0))
    return step / 2 + rand(0, step / 2)

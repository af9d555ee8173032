"""The retry schedule shared by the citizens' deliveries and the national-portal sync (pure)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


def backoff(
    failed_attempts: int,
    *,
    base: float,
    cap: float,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random, so delays
    still grow while replicas retrying together spread out."""
    step = min(cap, base * 2.0 ** max(failed_attempts - 1, 0))
    return step / 2 + rand(0, step / 2)


@dataclass(frozen=True)
class RetryConfig:
    """How a worker pool retries its work (the notifier's deliveries, the portal's dossiers):
    attempts, backoff bounds, the lease of a claim, the poll interval (and how far it backs off
    while polls find nothing) and the number of workers."""

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 300.0
    lease: float = 60.0
    poll_interval: float = 1.0
    workers: int = 32
    max_poll_interval: float | None = None  # None: always `poll_interval`

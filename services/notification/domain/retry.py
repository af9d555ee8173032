"""How the citizens' deliveries and the national-portal sync retry (pure); the schedule itself is
the platform's one (`shared.runtime.retry.backoff`, re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.runtime.retry import backoff

__all__ = ["RetryConfig", "backoff"]


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

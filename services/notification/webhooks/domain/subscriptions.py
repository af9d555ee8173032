"""Webhook subscriptions: filters, the retry schedule, the dispatcher's settings and the delivered
body (pure, no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.cloudevents import SPEC_VERSION, CloudEvent
from shared.contracts.events import PublicDossierStatus

# The public steps a subscription may filter on (`action` of the public event).
EVENT_TYPES: tuple[str, ...] = (
    "submit",
    "receive",
    "refuse_intake",
    "start_processing",
    "request_supplement",
    "supplement_received",
    "request_payment",
    "payment_received",
    "refuse",
    "request_withdrawal",
    "confirm_withdrawal",
    "issue_result",
    "return_result",
    "assign",
    "approve",
    "extend",
)

# How many subscriptions one agency may hold.
MAX_SUBSCRIPTIONS_PER_AGENCY = 50

# Retry delays after each failed attempt (Standard Webhooks' usual schedule): the last attempt
# comes about 27.6 hours after the first, beyond a day-long outage.
RETRY_SCHEDULE_SECONDS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True)
class DispatchConfig:
    retry_schedule: tuple[float, ...]
    workers_per_subscription: int = 16
    timeout: float = 10.0
    breaker_failures: int = 20
    breaker_probe_seconds: float = 300.0
    max_queued_per_subscription: int = 10_000
    allow_private_urls: bool = False
    max_connections: int = 200
    # Outcomes are written at most every `flush_interval` while attempts end, and the loop that
    # writes them backs off up to `idle_poll_max_seconds` while none do (None: no backoff).
    flush_interval: float = 0.1
    idle_poll_max_seconds: float | None = None


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the subscriber answered 2xx
    FAILED = "failed"  # every attempt failed, or the subscriber refused it for good (redrivable)


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # by the circuit breaker; probed again later, or resumed by the agency
    DISABLED = "disabled"  # by the agency


class Filters(BaseModel):
    """Which public events a subscription receives; an empty list means "all"."""

    model_config = ConfigDict(extra="forbid")

    unit_codes: list[str] = Field(default_factory=list, max_length=200)
    procedure_codes: list[str] = Field(default_factory=list, max_length=1000)
    event_types: list[str] = Field(
        default_factory=list, description=f"Steps among: {', '.join(EVENT_TYPES)}"
    )

    def matches(self, event: PublicDossierStatus) -> bool:
        return (
            (not self.unit_codes or event.unit_code in self.unit_codes)
            and (not self.procedure_codes or event.procedure_code in self.procedure_codes)
            and (not self.event_types or event.action in self.event_types)
        )


def unknown_event_types(filters: Filters) -> list[str]:
    return [t for t in filters.event_types if t not in EVENT_TYPES]


def next_attempt_delay(
    failed_attempts: int, schedule: tuple[float, ...] = RETRY_SCHEDULE_SECONDS
) -> float | None:
    """Seconds to wait after the n-th failed attempt, or None when the schedule is exhausted."""
    if failed_attempts > len(schedule):
        return None
    return schedule[failed_attempts - 1]


def retry_window(schedule: tuple[float, ...] = RETRY_SCHEDULE_SECONDS) -> timedelta:
    return timedelta(seconds=sum(schedule))


def webhook_body(cloud_event: CloudEvent) -> bytes:
    """The delivered body: the CloudEvent in structured mode (application/cloudevents+json)."""
    return json.dumps(
        {
            "specversion": SPEC_VERSION,
            "id": cloud_event.id,
            "source": cloud_event.source,
            "type": cloud_event.type,
            "subject": cloud_event.subject,
            "time": cloud_event.time.isoformat(),
            "datacontenttype": "application/json",
            "data": json.loads(cloud_event.data),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def is_retryable(status_code: int) -> bool:
    """Which answers are worth another attempt; other 4xx mean the subscriber refuses the body."""
    return status_code >= 500 or status_code in (408, 409, 425, 429)

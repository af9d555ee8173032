"""Delivery statuses and the notification id (pure).

created -> sending -> sent -> delivered, or technical-failure / permanent-failure.
`created` with `attempts > 0` is a retry waiting for its `next_attempt_at` (the schedule:
`services.notification.domain.retry`).
"""

from __future__ import annotations

import uuid

CREATED = "created"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
TECHNICAL_FAILURE = "technical-failure"
PERMANENT_FAILURE = "permanent-failure"

FAILURES = frozenset({TECHNICAL_FAILURE, PERMANENT_FAILURE})
FINAL = frozenset({DELIVERED, *FAILURES})

NOTIFICATION_NAMESPACE = uuid.UUID("6f1c2d0e-8f4b-5a57-9b1e-3d1a0c6b7e21")


def notification_id(source_event_id: str, channel: str) -> str:
    """Deterministic: the same event and channel always give the same id (and idempotency key)."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{source_event_id}/{channel}"))


def is_final(status: str, channel: str) -> bool:
    """Final outcomes are published. E-mail has no delivery receipts, so `sent` ends it; an SMS
    waits for the gateway's receipt; the inbox is delivered when stored."""
    return status in FINAL or (status == SENT and channel == "email")

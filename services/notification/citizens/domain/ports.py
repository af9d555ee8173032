"""The ports of the citizen messages: the channel every provider implements (and the two ways a
send can fail), and the store of recipients, deliveries and inbox messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

Document = dict[str, Any]


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: str  # also the provider's idempotency key
    dossier_code: str
    address: str  # phone number or e-mail address; '' for the inbox
    title: str
    text: str


@dataclass(frozen=True)
class SendResult:
    status: Literal["sent", "delivered"]
    provider_reference: str | None = None


class TransientSendError(Exception):
    """Worth retrying later: time-out, connection refused, 5xx, 429, 4xx SMTP reply."""


class PermanentSendError(Exception):
    """Retrying cannot help: the address or message is refused (4xx HTTP, 5xx SMTP reply)."""


class Channel(Protocol):
    name: str  # sms, email, inbox
    provider: str  # label for metrics, breaker and rate limit

    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def close(self) -> None: ...


class MessageStore(Protocol):
    """Recipients, delivery records and inbox messages (adapters: `adapters.store` on MongoDB,
    `adapters.memory` in memory; one contract test runs against both).

    Delivery records are documents keyed by `_id` (the notification id). `update_where` takes a
    MongoDB filter and update, of the shapes the notifier sends: field equality (None also
    matches a missing field), `$in`, `$lte`, `$or` in filters; `$set`, `$unset`, `$inc` and
    `$push` (with `$each`) in updates."""

    async def ensure_indexes(self) -> None: ...

    async def save_recipient(
        self, dossier_code: str, fields: Document, *, new: bool = False
    ) -> None:
        """Upsert the contact details of a dossier (`new`: most likely not stored yet, as at
        its submission)."""
        ...

    async def recipient(self, dossier_code: str) -> Document | None: ...

    async def create_delivery(self, document: Document) -> bool:
        """Insert a delivery record; False when one with its `_id` exists already."""
        ...

    async def delivery(self, notification_id: str) -> Document | None: ...

    async def claim(
        self, notification_id: str, now: datetime, lease: timedelta, claim: str
    ) -> Document | None:
        """Take a due delivery (`created` and due, or `sending` with an expired lease): status
        `sending`, `claim`, a lease, one more attempt. None when not due or held elsewhere."""
        ...

    async def due_ids(self, now: datetime, limit: int) -> list[str]:
        """Ids of due retries, then of sends whose lease expired."""
        ...

    async def update_where(self, document_filter: Document, update: Document) -> bool:
        """A compare-and-set update of the delivery whose `_id` the filter names; True when it
        matched."""
        ...

    async def update_and_read(self, document_filter: Document, update: Document) -> Document | None:
        """`update_where` in the same round trip as reading the delivery back as updated; None
        when it did not match."""
        ...

    async def pending_fallbacks(self, before: datetime, limit: int = 100) -> list[Document]:
        """Deliveries whose fallback is pending and that were last updated at `before` or
        earlier."""
        ...

    async def deliveries_for(self, dossier_code: str) -> list[Document]:
        """A dossier's deliveries, oldest first."""
        ...

    async def inbox_for(self, dossier_code: str) -> list[Document]:
        """A dossier's inbox messages, oldest first."""
        ...

"""The port every channel implements, and the two ways a send can fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


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

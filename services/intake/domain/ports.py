"""The outbound ports of intake: what the service layer needs from the outside world, as
`typing.Protocol`s. Their adapters are in `services.intake.adapters`."""

from __future__ import annotations

from typing import Protocol

from services.intake.domain.payments import PaymentRequest


class PaymentProviderError(RuntimeError):
    """The provider could not create the payment (unreachable, refused, malformed answer)."""


class PaymentProvider(Protocol):
    name: str

    async def create_payment(self, request: PaymentRequest) -> str:
        """Register the transaction; return the URL where the citizen pays."""
        ...


class ResultDocuments(Protocol):
    """Where result documents issued by processing are read from."""

    async def fetch(self, storage_id: str) -> bytes: ...

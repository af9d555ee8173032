"""In-memory fakes of intake's ports, for tests and local experiments."""

from __future__ import annotations

from services.intake.domain.payments import PaymentRequest


class RecordingPaymentProvider:
    """A fake `PaymentProvider`: records requests, returns a fixed-form URL."""

    name = "recording"

    def __init__(self, base_url: str = "https://pay.example.test") -> None:
        self.base_url = base_url.rstrip("/")
        self.requests: list[PaymentRequest] = []

    async def create_payment(self, request: PaymentRequest) -> str:
        self.requests.append(request)
        return f"{self.base_url}/pay/{request.transaction_id}"

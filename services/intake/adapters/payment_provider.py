"""The national-payment-platform-style adapter of the `PaymentProvider` port, over HTTP."""

from __future__ import annotations

import httpx

from services.intake.domain.payments import PaymentRequest, payment_order
from services.intake.domain.ports import PaymentProviderError


def _key_bytes(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else key


class HttpPaymentProvider:
    """`POST <base_url>/transactions` with the signed order; the answer's `payment_url` is where
    the citizen pays."""

    name = "national-payment-platform"

    def __init__(
        self,
        base_url: str,
        merchant_code: str,
        request_key: bytes | str,
        client: httpx.AsyncClient,
    ) -> None:
        self._url = base_url.rstrip("/") + "/transactions"
        self._merchant_code = merchant_code
        self._key = _key_bytes(request_key)
        self._client = client

    async def create_payment(self, request: PaymentRequest) -> str:
        order = payment_order(request, self._merchant_code, self._key)
        try:
            response = await self._client.post(self._url, json=order.model_dump(mode="json"))
        except httpx.HTTPError as exc:
            raise PaymentProviderError(f"payment platform unreachable: {exc!r}") from exc
        if response.status_code >= 400:
            raise PaymentProviderError(
                f"payment platform refused transaction {request.transaction_id}: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        try:
            payment_url = response.json()["payment_url"]
        except (ValueError, KeyError, TypeError):
            payment_url = None
        if not isinstance(payment_url, str) or not payment_url.startswith(("https://", "http://")):
            raise PaymentProviderError("payment platform answered without a payment_url")
        return payment_url

"""SMS through an HTTP gateway (httpx), with an idempotency key per message.

Request: `POST <url>` with `Authorization: Bearer <token>`, `Idempotency-Key: <notification id>`
and `{"to", "text", "reference", "encoding", "segments"}`; a 2xx answer with `{"id": ...}` means
accepted. The gateway calls back later with a signed delivery receipt (see `api.py`).
429, 5xx, time-outs and connection errors are transient; any other 4xx is permanent.
"""

from __future__ import annotations

import httpx

from services.notification.citizens.domain import sms_text
from services.notification.citizens.domain.ports import (
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)


class HttpSmsChannel:
    name = "sms"

    def __init__(
        self,
        *,
        url: str,
        token: str,
        timeout: float = 5.0,
        max_connections: int = 20,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.provider = f"sms:{httpx.URL(url).host}"
        self._url = url
        self._token = token
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def send(self, message: OutgoingMessage) -> SendResult:
        measured = sms_text.measure(message.text)
        try:
            response = await self._client.post(
                self._url,
                json={
                    "to": message.address,
                    "text": message.text,
                    "reference": message.notification_id,
                    "encoding": measured.encoding,
                    "segments": measured.segments,
                },
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Idempotency-Key": message.notification_id,
                },
            )
        except httpx.HTTPError as exc:
            raise TransientSendError(type(exc).__name__) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientSendError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentSendError(f"HTTP {response.status_code}")
        reference = None
        try:
            reference = str(response.json().get("id") or "") or None
        except ValueError:
            pass
        return SendResult("sent", reference)

    async def close(self) -> None:
        await self._client.aclose()

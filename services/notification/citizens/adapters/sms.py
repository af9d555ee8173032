"""SMS through an HTTP gateway (aiohttp), with an idempotency key per message.

Request: `POST <url>` with `Authorization: Bearer <token>`, `Idempotency-Key: <notification id>`
and `{"to", "text", "reference", "encoding", "segments"}`; a 2xx answer with `{"id": ...}` means
accepted. The gateway calls back later with a signed delivery receipt (see `api.py`).
429, 5xx, time-outs and connection errors are transient; any other 4xx is permanent.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from services.notification.citizens.domain import sms_text
from services.notification.citizens.domain.ports import (
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from shared.runtime.http_client import CALL_FAILURES, LazySession


class HttpSmsChannel:
    name = "sms"

    def __init__(
        self, *, url: str, token: str, timeout: float = 5.0, max_connections: int = 20
    ) -> None:
        self.provider = f"sms:{urlsplit(url).hostname}"
        self._url = url
        self._token = token
        self._http = LazySession(timeout=timeout, max_connections=max_connections)

    async def send(self, message: OutgoingMessage) -> SendResult:
        measured = sms_text.measure(message.text)
        try:
            async with self._http().post(
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
            ) as response:
                status, body = response.status, await response.read()
        except CALL_FAILURES as exc:
            raise TransientSendError(type(exc).__name__) from None
        if status == 429 or status >= 500:
            raise TransientSendError(f"HTTP {status}")
        if status >= 400:
            raise PermanentSendError(f"HTTP {status}")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        reference = answer.get("id") if isinstance(answer, dict) else None
        return SendResult("sent", str(reference) if reference else None)

    async def close(self) -> None:
        await self._http.close()

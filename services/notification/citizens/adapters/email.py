"""E-mail over SMTP (aiosmtplib) with a small pool of open connections, reused across messages."""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

import aiosmtplib

from services.notification.citizens.domain.ports import (
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)


class SmtpEmailChannel:
    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        tls: Literal["none", "starttls", "tls"] = "none",
        username: str | None = None,
        password: str | None = None,
        validate_certs: bool = True,
        timeout: float = 10.0,
        pool_size: int = 4,
    ) -> None:
        self.provider = f"smtp:{host}:{port}"
        self._sender = sender
        self._options = {
            "hostname": host,
            "port": port,
            "use_tls": tls == "tls",
            "start_tls": tls == "starttls",
            "username": username,
            "password": password,
            "validate_certs": validate_certs,
            "timeout": timeout,
        }
        if tls != "none":
            self._options["tls_context"] = ssl.create_default_context()
            if not validate_certs:
                self._options["tls_context"].check_hostname = False
                self._options["tls_context"].verify_mode = ssl.CERT_NONE
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(pool_size)
        self._all: set[aiosmtplib.SMTP] = set()
        self._domain = sender.rsplit("@", 1)[-1].rstrip(">") or "localhost"

    def _compose(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.address
        email["Subject"] = message.title
        email["Date"] = formatdate(localtime=False)
        # One Message-ID per notification: a resend after a crash carries the same id, which
        # lets mail clients collapse the duplicate.
        email["Message-ID"] = make_msgid(idstring=message.notification_id, domain=self._domain)
        email["X-DVC-Notification-Id"] = message.notification_id
        email["X-DVC-Dossier"] = message.dossier_code
        email.set_content(message.text, charset="utf-8")
        return email

    async def _client(self) -> aiosmtplib.SMTP:
        try:
            client = self._idle.get_nowait()
        except asyncio.QueueEmpty:
            client = aiosmtplib.SMTP(**self._options)
            self._all.add(client)
        if not client.is_connected:
            await client.connect()
        return client

    async def send(self, message: OutgoingMessage) -> SendResult:
        async with self._slots:
            client: aiosmtplib.SMTP | None = None
            healthy = False
            try:
                client = await self._client()
                await client.send_message(self._compose(message))
                healthy = True
                return SendResult("sent")
            except aiosmtplib.SMTPRecipientsRefused as exc:
                healthy = True  # the connection is fine; this address is not
                raise PermanentSendError(f"recipient refused: {_codes(exc)}") from None
            except aiosmtplib.SMTPResponseException as exc:
                if 500 <= exc.code < 600:
                    healthy = True
                    raise PermanentSendError(f"SMTP {exc.code}") from None
                raise TransientSendError(f"SMTP {exc.code}") from None
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise TransientSendError(f"{type(exc).__name__}") from None
            finally:
                if client is not None:
                    if healthy:
                        self._idle.put_nowait(client)
                    else:
                        self._all.discard(client)
                        client.close()

    async def close(self) -> None:
        for client in list(self._all):
            if client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), timeout=2)
                except Exception:
                    client.close()
        self._all.clear()


def _codes(exc: aiosmtplib.SMTPRecipientsRefused) -> str:
    return ",".join(str(getattr(r, "code", "?")) for r in exc.recipients)

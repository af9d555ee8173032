"""E-mail over SMTP (aiosmtplib) with a small pool of open connections, reused across messages.

A message to an ASCII address is composed with the `email` package's compat32 classes
(`MIMEText`, `Header`) and sent as bytes: about 4x less CPU than `EmailMessage`, whose default
policy parses every header it is given back. An address with non-ASCII characters (allowed since
RFC 6531) goes through `EmailMessage` and `send_message`, which ask the server for SMTPUTF8.
"""

from __future__ import annotations

import asyncio
import ssl
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid, parseaddr
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
        pool_size: int = 16,
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
        self._envelope_sender = parseaddr(sender)[1]
        # The same for every message: folded once, as `EmailMessage` folds it (its RFC 2047
        # encoding of a Vietnamese display name reads back right in every parser tried).
        probe = EmailMessage()
        probe["From"] = sender
        self._from_line = policy.SMTP.fold_binary("From", probe["From"])

    def _headers(self, message: OutgoingMessage) -> dict[str, str]:
        return {
            "Date": formatdate(localtime=False),
            # One Message-ID per notification: a resend after a crash carries the same id,
            # which lets mail clients collapse the duplicate.
            "Message-ID": make_msgid(idstring=message.notification_id, domain=self._domain),
            "X-DVC-Notification-Id": message.notification_id,
            "X-DVC-Dossier": message.dossier_code,
        }

    def _compose_ascii(self, message: OutgoingMessage) -> bytes:
        # Text in canonical form (CRLF line breaks) before the base64 encoding, as `set_content`
        # writes it.
        text = message.text.replace("\r\n", "\n").replace("\n", "\r\n")
        email = MIMEText(text, "plain", "utf-8")
        email["To"] = message.address
        email["Subject"] = Header(message.title, "utf-8")
        for name, value in self._headers(message).items():
            email[name] = value
        return self._from_line + email.as_bytes(policy=_SMTP_COMPAT32)

    def _compose(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.address
        email["Subject"] = message.title
        for name, value in self._headers(message).items():
            email[name] = value
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
                if message.address.isascii():
                    data = self._compose_ascii(message)
                    await client.sendmail(self._envelope_sender, [message.address], data)
                else:
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


_SMTP_COMPAT32 = policy.compat32.clone(linesep="\r\n")


def _codes(exc: aiosmtplib.SMTPRecipientsRefused) -> str:
    return ",".join(str(getattr(r, "code", "?")) for r in exc.recipients)

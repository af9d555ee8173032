"""A local SMTP server that accepts every message, for development and tests.

    python -m devstack.simulators.mail --port 8025 --smtp-port 1025 --data .devstack/run/mail

- SMTP on `--smtp-port` (default 1025, the notification service's default): any sender, any
  recipient, SMTPUTF8, no TLS, any AUTH credentials. Each message is written as `<id>.eml` (the
  bytes as received) and indexed in `index.jsonl`: id, received_at, the envelope's `mail_from` and
  `to` (recipients), the `From`, `To` and `Subject` headers, `message_id`, the notification's
  `X-DVC-Dossier` and `X-DVC-Notification-Id` headers (`dossier`, `notification_id`), `size` and
  `file`.
- HTTP on `--port`: `GET /messages?to=<address>&limit=<n>` (oldest first, each with its plain
  text), `GET /messages/{id}`, `GET /messages/{id}/raw` (the `.eml`, `message/rfc822`),
  `GET /health/ready`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
from collections.abc import AsyncIterator
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response

from devstack.simulators.common import (
    Entry,
    MessageLog,
    add_listing,
    new_id,
    now_iso,
    parser,
    serve,
)

log = logging.getLogger("devstack.simulators.mail")


class MailStore:
    """The aiosmtpd handler: every message to a `.eml` file, then a line of the index."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.index = MessageLog(folder / "index.jsonl")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", errors="surrogateescape")
        message_id = new_id()
        file = self.folder / f"{message_id}.eml"
        file.write_bytes(content)
        entry: Entry = {
            "id": message_id,
            "received_at": now_iso(),
            "mail_from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            **_headers(content),
            "size": len(content),
            "file": file.name,
        }
        self.index.append(entry)
        log.info("stored %s (%d recipients, %d bytes)", file.name, len(entry["to"]), len(content))
        return "250 OK: stored as " + message_id

    def text(self, entry: Entry) -> str | None:
        """The message's plain-text body (or HTML, when it has no plain text)."""
        try:
            message = _parse((self.folder / entry["file"]).read_bytes())
            body = message.get_body(preferencelist=("plain", "html"))
            return body.get_content() if body is not None else None
        except (OSError, LookupError, ValueError):
            return None


def _parse(content: bytes) -> EmailMessage:
    return email.message_from_bytes(content, policy=email.policy.default)  # type: ignore[return-value]


# The headers worth listing: index key -> header name.
LISTED_HEADERS = {
    "from": "From",
    "header_to": "To",
    "subject": "Subject",
    "message_id": "Message-ID",
    "dossier": "X-DVC-Dossier",
    "notification_id": "X-DVC-Notification-Id",
}


def _headers(content: bytes) -> dict[str, str | None]:
    """The headers worth listing, decoded (RFC 2047 words, and raw UTF-8 under SMTPUTF8); a
    header that does not decode is left out, never refused. Only the header block is parsed, as
    plain strings: a tenth of the CPU of a full `policy.default` parse (0.1 against 1 ms a
    message), which the simulator spent on every notification under load, on the platform's
    cores."""
    try:
        raw = dict(BytesHeaderParser(policy=compat32).parsebytes(content).raw_items())
    except Exception:  # the bytes are stored anyway; the index just knows less
        return {}
    return {key: _decoded(raw.get(name)) for key, name in LISTED_HEADERS.items()}


def _decoded(value: str | None) -> str | None:
    if value is None:
        return None
    # The parser keeps bytes beyond ASCII as surrogates: back to bytes, read as UTF-8; and a
    # folded header is unfolded (line breaks out, the whitespace after them kept).
    text = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    text = "".join(text.splitlines())
    try:
        return str(make_header(decode_header(text))).strip()
    except Exception:
        return None


def _accept_any_login(*_: Any) -> AuthResult:
    return AuthResult(success=True)


def create_app(folder: Path, *, smtp_host: str = "127.0.0.1", smtp_port: int = 1025) -> FastAPI:
    """The HTTP listing; its lifespan runs the SMTP server on the same event loop."""
    store = MailStore(folder)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(
                store,
                hostname="mail-simulator.localhost",  # not the FQDN lookup, which can be slow
                enable_SMTPUTF8=True,
                auth_require_tls=False,
                authenticator=_accept_any_login,
            ),
            smtp_host,
            smtp_port,
        )
        log.info("SMTP on %s:%d, messages in %s", smtp_host, smtp_port, folder)
        try:
            yield
        finally:
            server.close()  # open client connections are dropped with the loop

    app = FastAPI(title="Mail simulator (SMTP)", lifespan=lifespan)
    app.state.store = store
    add_listing(app, store.index, lambda entry: {**entry, "text": store.text(entry)})

    @app.get("/messages/{message_id}/raw", response_model=None)
    async def raw(message_id: str) -> Response:
        entry = store.index.entries.get(message_id)
        if entry is None:
            return JSONResponse({"error": "unknown message"}, status_code=404)
        return FileResponse(folder / entry["file"], media_type="message/rfc822")

    return app


def main(argv: list[str] | None = None) -> None:
    arguments = parser("Local SMTP server that stores every message", default_port=8025)
    arguments.add_argument("--smtp-port", type=int, default=1025)
    args = arguments.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    app = create_app(args.data.resolve(), smtp_host=args.host, smtp_port=args.smtp_port)
    serve(app, args.host, args.port)


if __name__ == "__main__":
    main()

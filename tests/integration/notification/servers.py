"""Real local stand-ins for the providers: an SMTP server (aiosmtpd) and an HTTP SMS gateway."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn
from aiosmtpd.controller import Controller

from devstack.simulators.portal import PortalState, create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _MailHandler:
    def __init__(self, inbox: list[EmailMessage]) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.inbox.append(message)  # type: ignore[arg-type]
        return "250 OK"


class SmtpServer:
    """A real SMTP server on a free port; `messages` holds what it received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(
            _MailHandler(self.messages), hostname="127.0.0.1", port=self.port
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in m["X-Envelope-To"]]


@dataclass
class SmsRequest:
    idempotency_key: str | None
    authorization: str | None
    body: dict[str, Any]
    answered: int


@dataclass
class SmsGateway:
    """An HTTP SMS gateway on a free port that records every request.

    `mode`: ok (200, deduplicating on Idempotency-Key like a real gateway), fail (500),
    hang (answers after `hang_seconds`, past the client's time-out), slow (answers 200 after
    `slow_seconds`).
    """

    mode: str = "ok"
    hang_seconds: float = 2.0
    slow_seconds: float = 0.2
    requests: list[SmsRequest] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> message id

    def __post_init__(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = gateway._answer(self.headers.get("Idempotency-Key"))
                gateway.requests.append(
                    SmsRequest(
                        self.headers.get("Idempotency-Key"),
                        self.headers.get("Authorization"),
                        body,
                        status,
                    )
                )
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (time-out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/sms"

    def _answer(self, key: str | None) -> tuple[int, dict[str, Any]]:
        mode = self.mode
        if mode == "fail":
            return 500, {"error": "gateway down"}
        if mode == "hang":
            time.sleep(self.hang_seconds)
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if key and key in self.accepted:
            return 200, {"id": self.accepted[key], "duplicate": True}
        message_id = uuid.uuid4().hex
        if key:
            self.accepted[key] = message_id
        return 200, {"id": message_id}

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def to(self, phone: str) -> list[SmsRequest]:
        return [r for r in self.requests if r.body.get("to") == phone]


@dataclass
class WebhookCall:
    headers: dict[str, str]
    body: bytes
    answered: int
    received_at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """An agency's webhook endpoint on a free port that records every call.

    `mode`: ok (204), fail (`fail_status`), hang (answers after `hang_seconds`, past the
    client's time-out), slow (answers 204 after `slow_seconds`). `fail_first`: answer
    `fail_status` to that many calls first, whatever the mode.
    """

    mode: str = "ok"
    fail_status: int = 500
    fail_first: int = 0
    hang_seconds: float = 2.0
    slow_seconds: float = 0.5
    calls: list[WebhookCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real endpoint

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._answer()
                with receiver._lock:
                    receiver.calls.append(
                        WebhookCall(
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.time(),
                        )
                    )
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (time-out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/dvc"

    def _answer(self) -> int:
        with self._lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return self.fail_status
        if self.mode == "fail":
            return self.fail_status
        if self.mode == "hang":
            time.sleep(self.hang_seconds)
            return 504  # recorded as not delivered: the client gave up before this answer
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        return 204

    def start(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def delivered(self) -> list[WebhookCall]:
        return [c for c in self.calls if 200 <= c.answered < 300]


USER, PASSWORD = "dvc-most", "portal-test-password"


class PortalServer:
    """The portal simulator app under uvicorn, in a thread, on a free port."""

    def __init__(
        self, session_ttl: float = 900, username: str = USER, password: str = PASSWORD
    ) -> None:
        self.app = create_app(username=username, password=password, session_ttl=session_ttl)
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def state(self) -> PortalState:
        return self.app.state.portal

    def start(self) -> PortalServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the portal simulator did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return httpx.post(self.url + path, json=body or {}, timeout=5).json()

    def requests(self, kind: str | None = None) -> list[tuple[str, int]]:
        return [
            (r["kind"], r["status"])
            for r in list(self.state.requests)
            if kind is None or r["kind"] == kind
        ]

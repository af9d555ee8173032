"""A fast local webhook receiver for bench/bench_agencies.py (run as its own process).

    .venv/bin/python bench/webhook_receiver.py --port 18080

A raw asyncio HTTP/1.1 keep-alive server, so that the receiver is not what a benchmark measures.
Every `POST /hooks/<name>` is checked with `services.notification.webhooks.domain.signing.verify`
against the secret registered for `<name>` and answered 204 (401 when the signature is wrong).
Control endpoints for the benchmark:
- `POST /secrets` with a JSON object {name: secret} registers secrets;
- `GET /stats`: {"received", "distinct", "bad_signatures", "first_at", "last_at"};
- `GET /receipts`: [[name, webhook-id, first receipt time (Unix seconds)], ...];
- `POST /reset` forgets every call (not the secrets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from services.notification.webhooks.domain.signing import InvalidSignature, verify

NO_CONTENT = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
UNAUTHORIZED = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


class State:
    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        self.received = 0
        self.bad_signatures = 0
        self.receipts: dict[tuple[str, str], float] = {}
        self.first_at: float | None = None
        self.last_at: float | None = None

    def hook(self, name: str, headers: dict[str, str], body: bytes) -> bytes:
        now = time.time()
        self.received += 1
        self.first_at = self.first_at or now
        self.last_at = now
        secret = self.secrets.get(name)
        try:
            if secret is None:
                raise InvalidSignature(f"no secret for {name}")
            verify(secret, headers, body, now=int(now))
        except InvalidSignature:
            self.bad_signatures += 1
            return UNAUTHORIZED
        self.receipts.setdefault((name, headers.get("webhook-id", "")), now)
        return NO_CONTENT

    def control(self, method: str, path: str, body: bytes) -> bytes:
        payload: Any = None
        if method == "POST" and path == "/secrets":
            self.secrets.update(json.loads(body))
            payload = {"secrets": len(self.secrets)}
        elif method == "POST" and path == "/reset":
            self.reset()
            payload = {"reset": True}
        elif method == "GET" and path == "/stats":
            payload = {
                "received": self.received,
                "distinct": len(self.receipts),
                "bad_signatures": self.bad_signatures,
                "first_at": self.first_at,
                "last_at": self.last_at,
            }
        elif method == "GET" and path == "/receipts":
            payload = [[name, hook_id, at] for (name, hook_id), at in self.receipts.items()]
        if payload is None:
            return NOT_FOUND
        data = json.dumps(payload).encode()
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}"
        return head.encode() + b"\r\n\r\n" + data


class Connection(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = lines[0].split(" ", 2)
            if method == "POST" and path.startswith("/hooks/"):
                answer = self.state.hook(path.removeprefix("/hooks/"), headers, body)
            else:
                answer = self.state.control(method, path, body)
            assert self.transport is not None
            self.transport.write(answer)


async def serve(port: int) -> None:
    state = State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(state), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()

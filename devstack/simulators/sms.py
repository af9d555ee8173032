"""A local SMS gateway speaking the protocol of
`services/notification/citizens/adapters/sms.py`, for development and tests.

    python -m devstack.simulators.sms --port 9099 --data .devstack/run/sms \
        [--receipt-url http://127.0.0.1:8003/notifications/sms/receipts] [--receipt-delay 1]

The bearer token is `DVC_SMSSIM_TOKEN` (default `dev-sms-token`) and the receipts' signing secret
`DVC_SMSSIM_RECEIPT_SECRET` (default `dev-sms-receipt-secret`): notification's development
defaults.

- `POST /sms` with `Authorization: Bearer <token>` (else 401), an `Idempotency-Key` header and
  the JSON body `{"to", "text", "reference", "encoding": "gsm7"|"ucs2", "segments": n >= 1}`,
  nothing else (else 400 `{"errors": [...]}`): 200 `{"id": ..., "status": "accepted"}`, and the
  message is appended to `messages.jsonl`. A key seen before answers the first message's id with
  `"duplicate": true` and stores nothing, as a real gateway deduplicates.
- With `--receipt-url`, each accepted message gets a delivery receipt after `--receipt-delay`
  seconds: `POST` of `{"reference", "status": "delivered"}` — or `"failed"` with an `error` when
  `to` ends in `0000` (e.g. `0912340000`: a way to try the fallback to e-mail) or is not a
  Vietnamese mobile number (0 or +84, then 3/5/7/8/9 and eight digits) — signed with HMAC-SHA256
  over `<X-Timestamp>.<body>` (hex in `X-Signature`); retried on connection errors, 429 and 5xx.
  The outcome goes to `receipts.jsonl`.
- `GET /messages?to=<phone>&limit=<n>` (oldest first, each with its `receipt` or null),
  `GET /messages/{id}`, `GET /health/ready`.

The rules and the signature are written here independently of the channel and of notification's
receipt check, so that a test through this gateway proves the protocol, not the code's agreement
with itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from devstack.simulators.common import (
    Entry,
    MessageLog,
    add_listing,
    new_id,
    now_iso,
    parser,
    serve,
)
from shared.runtime.background import cancel_and_wait

log = logging.getLogger("devstack.simulators.sms")

FIELDS = ("to", "text", "reference", "encoding", "segments")
ENCODINGS = ("gsm7", "ucs2")
MOBILE = re.compile(r"^(?:\+?84|0)[35789]\d{8}$")
UNKNOWN_SUBSCRIBERS = "0000"  # the ending of valid numbers that get a failed receipt
# Seconds before each attempt to hand a receipt over.
RECEIPT_RETRIES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)


def request_errors(body: Any) -> list[str]:
    """Every rule a send request's body breaks (empty: valid)."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    errors = [f"{name}: unknown field" for name in sorted(body.keys() - set(FIELDS))]
    for name in ("to", "text", "reference"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            errors.append(f"{name}: required, a non-empty string")
    if body.get("encoding") not in ENCODINGS:
        errors.append(f"encoding: one of {', '.join(ENCODINGS)}")
    segments = body.get("segments")
    if not isinstance(segments, int) or isinstance(segments, bool) or segments < 1:
        errors.append("segments: required, an integer of at least 1")
    return errors


def deliverable(phone: str) -> bool:
    """A mobile number, unless it ends in 0000: those are "unknown subscribers"."""
    number = re.sub(r"[\s.\-()]", "", phone)
    return MOBILE.match(number) is not None and not number.endswith(UNKNOWN_SUBSCRIBERS)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class Gateway:
    def __init__(
        self,
        folder: Path,
        *,
        token: str,
        receipt_url: str | None,
        receipt_secret: str,
        receipt_delay: float,
    ) -> None:
        self.token = token
        self.receipt_url = receipt_url
        self.receipt_secret = receipt_secret
        self.receipt_delay = receipt_delay
        self.messages = MessageLog(folder / "messages.jsonl")
        self.receipts = MessageLog(folder / "receipts.jsonl")  # id: the message's id
        self.by_key = {e["idempotency_key"]: e["id"] for e in self.messages.entries.values()}
        self.pending: set[asyncio.Task[None]] = set()
        self.client: httpx.AsyncClient | None = None

    def view(self, entry: Entry) -> Entry:
        return {**entry, "receipt": self.receipts.entries.get(entry["id"])}

    def accept(self, key: str, body: dict[str, Any]) -> Entry:
        entry: Entry = {"id": new_id(), "received_at": now_iso(), "idempotency_key": key, **body}
        self.messages.append(entry)
        self.by_key[key] = entry["id"]
        log.info("stored %s (%s, %d segments)", entry["id"], body["encoding"], body["segments"])
        if self.receipt_url and self.client is not None:
            task = asyncio.create_task(self._receipt(entry))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        return entry

    async def _receipt(self, entry: Entry) -> None:
        assert self.client is not None and self.receipt_url
        await asyncio.sleep(self.receipt_delay)
        receipt: dict[str, Any] = {"reference": entry["reference"], "status": "delivered"}
        if not deliverable(entry["to"]):
            receipt = {**receipt, "status": "failed", "error": "unknown subscriber"}
        body = json.dumps(receipt).encode()
        answer: int | str = "not sent"
        for delay in RECEIPT_RETRIES:
            await asyncio.sleep(delay)
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Timestamp": timestamp,
                "X-Signature": signature(self.receipt_secret, timestamp, body),
            }
            try:
                response = await self.client.post(self.receipt_url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
                continue
            answer = response.status_code
            if response.status_code != 429 and response.status_code < 500:
                break
        self.receipts.append({"id": entry["id"], **receipt, "answer": answer, "at": now_iso()})
        log.info("receipt %s for %s: answered %s", receipt["status"], entry["id"], answer)

    async def close(self) -> None:
        await cancel_and_wait(*self.pending)
        if self.client is not None:
            await self.client.aclose()


def create_app(
    folder: Path,
    *,
    token: str = "dev-sms-token",
    receipt_url: str | None = None,
    receipt_secret: str = "dev-sms-receipt-secret",
    receipt_delay: float = 1.0,
) -> FastAPI:
    gateway = Gateway(
        folder,
        token=token,
        receipt_url=receipt_url,
        receipt_secret=receipt_secret,
        receipt_delay=receipt_delay,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway.client = httpx.AsyncClient(timeout=5.0)
        try:
            yield
        finally:
            await gateway.close()

    app = FastAPI(title="SMS gateway simulator", lifespan=lifespan)
    app.state.gateway = gateway
    add_listing(app, gateway.messages, gateway.view)

    @app.post("/sms")
    async def send(request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization", "")
        if not secrets.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"errors": ["missing or wrong bearer token"]}, status_code=401)
        key = request.headers.get("idempotency-key", "").strip()
        try:
            body = await request.json()
        except ValueError:
            body = None
        errors = request_errors(body)
        if not key:
            errors.insert(0, "Idempotency-Key: required header")
        if errors:
            return JSONResponse({"errors": errors}, status_code=400)
        if key in gateway.by_key:
            return JSONResponse({"id": gateway.by_key[key], "duplicate": True})
        entry = gateway.accept(key, body)
        return JSONResponse({"id": entry["id"], "status": "accepted"})

    return app


def main(argv: list[str] | None = None) -> None:
    arguments = parser("Local SMS gateway that stores every message", default_port=9099)
    arguments.add_argument(
        "--receipt-url", help="where to send delivery receipts (none: no receipts)"
    )
    arguments.add_argument("--receipt-delay", type=float, default=1.0, help="seconds")
    args = arguments.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(
        args.data.resolve(),
        token=os.environ.get("DVC_SMSSIM_TOKEN", "dev-sms-token"),
        receipt_url=args.receipt_url,
        receipt_secret=os.environ.get("DVC_SMSSIM_RECEIPT_SECRET", "dev-sms-receipt-secret"),
        receipt_delay=args.receipt_delay,
    )
    serve(app, args.host, args.port)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Sample receiver of the DVC platform's webhooks (public dossier-status events), for other
agencies. Standard library only (Python 3.11+): copy this file, or copy `verify()` into your own
web framework.

    export WEBHOOK_SECRET=whsec_...   # returned once when you registered the subscription
    python webhook_receiver.py --port 8080

The platform calls only https URLs: run this behind your HTTPS reverse proxy (or load balancer).

What every receiver has to do (the Standard Webhooks scheme):

- Verify the signature before anything else. Each request carries `webhook-id`,
  `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>`, several
  separated by spaces). The HMAC key is the base64-decoded secret after `whsec_`; the signed
  message is `<webhook-id>.<webhook-timestamp>.<raw body>`. Use the raw bytes of the body (not
  re-serialised JSON), compare in constant time, and refuse a timestamp more than 5 minutes from
  your clock (a captured request replayed later). Answer 401 when it does not verify.
- Answer 2xx quickly (the platform waits at most 10 s): queue the work, answer, process after.
  Any other answer, or none, is retried later (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
- Deduplicate on `webhook-id`: it is the event id, the same on every retry, redrive or replay.
- The body is the CloudEvent in structured mode (`application/cloudevents+json`): `id`, `source`,
  `type`, `subject` (the dossier code), `time`, `data` (the public step). Ignore fields and
  values you do not know; they may be added.
- One dossier's events arrive in order (the next one waits for your 2xx to the previous one);
  keep that order if you process in parallel, e.g. by processing one dossier on one worker.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import os
import queue
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 1 << 20

log = logging.getLogger("dvc-webhook-receiver")


class InvalidSignature(ValueError):
    """Not signed with our secret, or signed too long ago (or in the future)."""


def verify(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check one request; returns its `webhook-id`, or raises InvalidSignature.

    `secret` may be several secrets: during a rotation of your own configuration (the platform
    signs with the new secret as soon as you rotate it), accept the new and the old one.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise InvalidSignature("missing or malformed webhook-* headers") from exc
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance window")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    for candidate_secret in [secret] if isinstance(secret, str) else secret:
        key = base64.b64decode(candidate_secret.removeprefix(SECRET_PREFIX))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        for signature in signatures:
            version, _, value = signature.partition(",")
            if version == "v1" and hmac.compare_digest(expected, value.encode()):
                return msg_id
    raise InvalidSignature("no matching signature")


class RecentIds:
    """The last `capacity` accepted webhook ids (thread-safe). To be exact across restarts, store
    the id with the effect in your database (a unique index) instead."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, msg_id: str) -> bool:
        with self._lock:
            if msg_id in self._ids:
                return False
            self._ids[msg_id] = None
            if len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
            return True

    def forget(self, msg_id: str) -> None:
        with self._lock:
            self._ids.pop(msg_id, None)


Handler = Callable[[dict[str, Any]], None]


class WebhookReceiver:
    """An HTTP server that verifies, deduplicates and queues deliveries; one worker thread calls
    `handle(cloud_event)` for each, in the order received."""

    def __init__(
        self,
        secret: str | Iterable[str],
        handle: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        tolerance: int = TOLERANCE_SECONDS,
        max_queued: int = 10_000,
    ) -> None:
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        self.handle = handle
        self.tolerance = tolerance
        self.seen = RecentIds()
        self.work: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queued)
        self.server = ThreadingHTTPServer((host, port), self._request_handler())
        self.server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> WebhookReceiver:
        for target in (self.server.serve_forever, self._work):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.work.put(None)  # the worker finishes what is queued, then stops
        for thread in self._threads:
            thread.join(timeout=10)

    def accept(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """The answer (status, reason) to one request; queues the event when it is new."""
        try:
            msg_id = verify(self.secrets, headers, body, tolerance=self.tolerance)
        except InvalidSignature as exc:
            return 401, str(exc)
        if not self.seen.first_time(msg_id):
            return 200, "duplicate, already accepted"
        try:
            event = json.loads(body)
            self.work.put_nowait(event)
        except ValueError:  # signed, so from the platform; cannot happen unless it has a bug
            self.seen.forget(msg_id)
            return 400, "the body is not JSON"
        except queue.Full:  # answer "later": the platform retries
            self.seen.forget(msg_id)
            return 503, "busy"
        return 202, "accepted"

    def _work(self) -> None:
        while (event := self.work.get()) is not None:
            try:
                self.handle(event)
            except Exception:  # keep going; in production, keep the event aside to retry
                log.exception("handling event %s failed", event.get("id"))

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the platform reuses connections

            def do_POST(self) -> None:
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    return self._answer(411, "Content-Length required")
                if int(length) > MAX_BODY_BYTES:
                    self.close_connection = True
                    return self._answer(413, "too large")
                body = self.rfile.read(int(length))
                status, reason = receiver.accept(dict(self.headers.items()), body)
                return self._answer(status, reason)

            def do_GET(self) -> None:
                self._answer(405, "POST only")

            def _answer(self, status: int, reason: str) -> None:
                payload = json.dumps({"status": status, "detail": reason}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 405:
                    self.send_header("Allow", "POST")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

        return RequestHandler


def describe(event: dict[str, Any]) -> str:
    """One line per event; `.get` everywhere, so that a missing or new field is no error."""
    data = event.get("data") or {}
    return (
        f"{event.get('time')} {event.get('subject')} unit={data.get('unit_code')} "
        f"procedure={data.get('procedure_code')} action={data.get('action')} "
        f"state={data.get('state')} id={event.get('id')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="behind your reverse proxy")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    secrets = os.environ.get("WEBHOOK_SECRET", "").split()  # "new old" during a rotation
    if not secrets:
        parser.error("set WEBHOOK_SECRET to the whsec_... secret of the subscription")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    receiver = WebhookReceiver(
        secrets, lambda event: print(describe(event), flush=True), args.host, args.port
    )
    receiver.start()
    log.info("listening on %s", receiver.url)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    receiver.stop()  # the queued events are handled before it returns
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

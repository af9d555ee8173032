"""What both simulators share: an append-only JSON-lines log of received messages, the listing
endpoints, the command line and the server loop (SIGTERM: a clean shutdown, exit status 0)."""

from __future__ import annotations

import argparse
import json
import secrets
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

Entry = dict[str, Any]


def new_id() -> str:
    """Sortable by arrival and readable in a file name: `20261128T083000123456Z-1a2b3c`."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class MessageLog:
    """Entries (JSON objects with an `id`) kept in memory and appended to a JSON-lines file,
    reloaded at start; a line cut short by a crash is skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, Entry] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and "id" in entry:
                    self.entries[str(entry["id"])] = entry

    def append(self, entry: Entry) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.entries[str(entry["id"])] = entry

    def select(self, to: str | None = None, limit: int | None = None) -> list[Entry]:
        """Oldest first; `to` keeps the entries sent to that address (any case), `limit` the
        most recent ones."""
        chosen = [e for e in self.entries.values() if to is None or _addressed_to(e, to)]
        return chosen[-limit:] if limit else chosen


def _addressed_to(entry: Entry, address: str) -> bool:
    recipients = entry.get("to")
    if isinstance(recipients, str):
        recipients = [recipients]
    return _plain(address) in (_plain(r) for r in recipients or [])


def _plain(address: str) -> str:
    """Case-insensitive, and `?to=+84…` unencoded (the `+` arrives as a space) still matches."""
    return address.strip().lstrip("+").lower()


def add_listing(app: FastAPI, log: MessageLog, view: Callable[[Entry], Entry]) -> None:
    """`GET /messages?to=&limit=` and `GET /messages/{id}` (each entry through `view`), and
    `GET /health/ready`."""

    @app.get("/messages")
    async def messages(
        to: str | None = None, limit: int | None = Query(default=None, ge=1)
    ) -> dict[str, list[Entry]]:
        return {"messages": [view(e) for e in log.select(to, limit)]}

    @app.get("/messages/{message_id}", response_model=None)
    async def message(message_id: str) -> Entry | JSONResponse:
        entry = log.entries.get(message_id)
        if entry is None:
            return JSONResponse({"error": "unknown message"}, status_code=404)
        return view(entry)

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}


def parser(description: str, default_port: int) -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--host", default="127.0.0.1")
    arguments.add_argument("--port", type=int, default=default_port, help="HTTP port")
    arguments.add_argument(
        "--data", type=Path, required=True, help="folder that keeps what was received"
    )
    return arguments


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run until SIGINT or SIGTERM; uvicorn then runs the app's shutdown and re-raises the
    signal, which this handler turns into exit status 0."""
    import uvicorn

    from shared.runtime.service import QuietServer  # uvicorn with a once-a-second housekeeping tick

    def exit_quietly(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, exit_quietly)
    # The services' event loop and HTTP parser, no access log: the simulators share the cores
    # with the platform under load (bench/bench_e2e.py), at a few hundred requests a second.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    QuietServer(config).run()

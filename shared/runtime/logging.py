"""Structured JSON logs that carry the dossier code and event id being handled.

Set the context with `log_context(dossier_code=..., event_id=...)`; every record logged inside it
carries both. Never log contact details or citizen IDs: mask them (`mask`) first. As a safety
net, every message and traceback is passed through `shared.runtime.failures.mask_personal`, which
blanks e-mail addresses and long numbers (phones, citizen IDs, tax codes) that slipped into a text.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from shared.runtime.failures import mask_personal

_dossier_code: ContextVar[str | None] = ContextVar("dossier_code", default=None)
_event_id: ContextVar[str | None] = ContextVar("event_id", default=None)


@contextmanager
def log_context(dossier_code: str | None = None, event_id: str | None = None) -> Iterator[None]:
    tokens = (_dossier_code.set(dossier_code), _event_id.set(event_id))
    try:
        yield
    finally:
        _dossier_code.reset(tokens[0])
        _event_id.reset(tokens[1])


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_personal(record.getMessage()), None
        record.service = self.service
        if (code := _dossier_code.get()) and not hasattr(record, "dossier_code"):
            record.dossier_code = code
        if (event_id := _event_id.get()) and not hasattr(record, "event_id"):
            record.event_id = event_id
        return True


class _OncePer(logging.Filter):
    """Lets a record of loggers under `prefix` through once per `seconds` per message template."""

    def __init__(self, seconds: float, prefix: str) -> None:
        super().__init__()
        self.seconds = seconds
        self.prefix = prefix
        self._last: dict[tuple[str, Any], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self._last.get(key, -self.seconds) < self.seconds:
            return False
        self._last[key] = now
        return True


class _MaskingJsonFormatter(JsonFormatter):
    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return mask_personal(text if isinstance(text, str) else "\n".join(text))


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _MaskingJsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # FastStream gives its logger a coloured stderr handler of its own; send it through ours.
    faststream_logger = logging.getLogger("faststream")
    faststream_logger.handlers.clear()
    faststream_logger.propagate = True
    for noisy in ("aiokafka", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # While the broker is away aiokafka logs the same error about ten times a second per
    # client: keep the first of each kind per 30 s.
    handler.addFilter(_OncePer(30.0, prefix="aiokafka"))


def mask(value: str | None, keep: int = 3) -> str:
    """`0912345678` -> `*******678`; for display and logs, never the raw value."""
    if not value:
        return ""
    return "*" * max(len(value) - keep, 0) + value[-keep:]

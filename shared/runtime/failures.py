"""What kind of failure a handler met, and how to describe it without personal data.

A consumer treats the two kinds differently (`shared.runtime.consumer`):
- *transient*: the infrastructure is away (database or broker unreachable, a time-out, a
  fail-over). The event is fine; it is retried without limit, holding its partition, and the
  service reports not-ready meanwhile (`OutageWatch`). Never dead-lettered.
- *awaiting an earlier event* (`AwaitingEarlierEvent`): parked on its topic for a while.
- anything else: the event or the code is at fault; a few retries, then the dead-letter topic.

Error texts end up in logs and dead-letter headers, which operators and other tools read:
`describe` never quotes input values (pydantic's messages do), and `mask_personal` blanks what
looks like a phone number, a citizen ID, a tax code or an e-mail address in any other text.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from prometheus_client import Gauge
from pydantic import ValidationError
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    PyMongoError,
    WTimeoutError,
)

WAITING_OUT = Gauge(
    "dvc_consumer_waiting_out_outage",
    "1 while a consumer group holds an event because the infrastructure is unreachable.",
    ["group"],
)

# Codes of the MongoDB errors that a fail-over or an overloaded server answers.
_TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the infrastructure is away, not the event bad."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_transient_here(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_transient_here(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True  # includes AutoReconnect, NotPrimaryError, ServerSelectionTimeoutError
    if isinstance(exc, PyMongoError):
        code = getattr(exc, "code", None)
        return code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError")
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    if isinstance(exc, httpx.TransportError):
        return True  # a peer service or gateway unreachable or timing out
    return isinstance(exc, TimeoutError | ConnectionError)


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Nine or more digits, possibly grouped: phone numbers (10-11), citizen IDs (12), tax codes
# (10 or 13 with a dash). Dossier codes and dates have shorter runs.
_LONG_NUMBER = re.compile(r"\+?\d(?:[ .-]?\d){8,}")


def mask_personal(text: str) -> str:
    """`text` with e-mail addresses and long numbers blanked."""
    return _LONG_NUMBER.sub("[number]", _EMAIL.sub("[email]", text))


def describe(exc: BaseException) -> str:
    """`Type: message` for logs and dead-letter headers, without the input values pydantic
    quotes, and with anything personal-looking masked."""
    validation = exc if isinstance(exc, ValidationError) else exc.__cause__
    if isinstance(validation, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            for error in validation.errors(include_input=False, include_url=False)
        )
        if validation is exc:
            text = f"ValidationError ({exc.title}): {problems}"
        else:  # e.g. "MalformedEvent: invalid <type> data: <pydantic text>"
            text = f"{type(exc).__name__}: {str(exc).split(':', 1)[0]}: {problems}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return mask_personal(text)[:2000]


class OutageWatch:
    """The consumer groups of a service that are waiting out an outage, and whether the service
    is stopping (a wait then ends at once: the event stays uncommitted and is redelivered)."""

    def __init__(self) -> None:
        self._waiting: dict[str, int] = {}
        self.stopping = asyncio.Event()

    @property
    def waiting(self) -> list[str]:
        return sorted(group for group, count in self._waiting.items() if count)

    def healthy(self) -> bool:
        return not self.waiting

    @contextmanager
    def waiting_out(self, group: str) -> Iterator[None]:
        self._waiting[group] = self._waiting.get(group, 0) + 1
        WAITING_OUT.labels(group).set(1)
        try:
            yield
        finally:
            self._waiting[group] -= 1
            if not self._waiting[group]:
                WAITING_OUT.labels(group).set(0)


class AwaitingEarlierEvent(Exception):
    """The event depends on another not applied yet, which travels on another topic (so may come
    later): e.g. a withdrawal before its dossier's case. A consumer tries it a few times, then
    parks it at the end of its topic, for up to `RetryPolicy.dependency_wait` in all;
    dead-lettered (reason `awaiting`) only if the other never comes. Domain errors of that kind
    derive from it."""


class StoppedDuringOutage(Exception):
    """The service stopped while an event was held (waiting out an outage or an earlier event):
    left uncommitted, so redelivered after the restart."""

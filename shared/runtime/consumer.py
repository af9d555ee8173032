"""Reliable consumption: parse, handle, wait out outages, dead-letter what cannot succeed.

A failure of the infrastructure (`shared.runtime.failures.is_transient`) is retried without limit,
the consumer holding the event (so later events of the same dossier never overtake it) and the
service reporting not-ready meanwhile. An event that depends on another not applied yet (a
withdrawal whose case, opened from another topic, is not there yet: `AwaitingEarlierEvent`) gets a
few quick tries, then is parked: put back at the end of its own topic (same key, same id), so the
consumer moves on and can read the event it awaits; it comes round again, until `dependency_wait`
has passed since it was first parked. Any other failure gets `max_attempts` tries. Then the event
goes to the dead-letter topic with a description free of input values (`python -m
shared.tools.redrive` puts it back once the cause is gone).

FastStream does the consuming (`subscribe`): a CloudEvents parser, a contract decoder, typed
handlers chosen by topic and event type, and `ReliableConsumption` as middleware. The offset is
committed only after the handler succeeded or the message was safely written to the dead-letter
topic. If even that write fails the exception
propagates, FastStream seeks back, and the message is redelivered: nothing is silently dropped.
Handlers must be idempotent (see `shared.runtime.idempotency`), since redelivery happens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from types import TracebackType
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from faststream import AckPolicy, BaseMiddleware
from faststream.exceptions import SubscriberNotFound
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.message import StreamMessage
from pydantic import ValidationError

from shared.contracts.cloudevents import CloudEvent, Contract, MalformedEvent, unwrap
from shared.runtime.background import wait_for_event
from shared.runtime.commits import CoalescedCommits
from shared.runtime.failures import (
    AwaitingEarlierEvent,
    OutageWatch,
    StoppedDuringOutage,
    describe,
    is_transient,
)
from shared.runtime.logging import log_context
from shared.runtime.metrics import CONSUMER_RETRIES, DEAD_LETTERS, EVENTS_PARKED
from shared.runtime.retry import backoff as retry_backoff

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """The event can never be processed as it is (e.g. it names an unknown procedure)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0

    # Waiting out an outage: no attempt limit, the pause grows to this.
    outage_max_delay: float = 30.0

    # How long an event awaiting an earlier one (`AwaitingEarlierEvent`) keeps being parked
    # before it is dead-lettered: far beyond the moments by which topics drift apart normally.
    dependency_wait: float = 600.0

    def backoff(self, failed_attempts: int, cap: float | None = None) -> float:
        """The platform's schedule (`shared.runtime.retry.backoff`) after the n-th failed
        attempt."""
        limit = self.max_delay if cap is None else cap
        return retry_backoff(failed_attempts, base=self.base_delay, cap=limit)


class Outcome(StrEnum):
    HANDLED = "handled"
    DEAD_LETTERED = "dead-lettered"
    PARKED = "parked"  # put back on its topic to await an earlier event


# The header of a parked event: when it was first parked (ISO 8601, UTC).
PARKED_SINCE_HEADER = "dvc_parked_since"


EventHandler = Callable[[Any, CloudEvent], Awaitable[None]]


class DeadLetterWriter(Protocol):
    async def __call__(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None: ...


async def handle_record(
    record: ConsumerRecord,
    *,
    handler: EventHandler,
    expected: Sequence[type[Contract]],
    group: str,
    dead_letter_topic: str,
    write_dead_letter: DeadLetterWriter,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    watch: OutageWatch | None = None,
    clock: Callable[[], float] = time.time,  # parked-since headers are wall-clock times
) -> Outcome:
    """Parse one record and handle it reliably (the batch consumer's record-by-record path)."""
    try:
        cloud_event = CloudEvent.from_kafka(record.value, record.headers)
        event = unwrap(cloud_event, expected)
    except MalformedEvent as exc:
        await _dead_letter(record, group, dead_letter_topic, write_dead_letter, "malformed", exc, 0)
        return Outcome.DEAD_LETTERED

    async def attempt() -> None:
        await handler(event, cloud_event)

    return await handle_reliably(
        attempt,
        record,
        cloud_event,
        group=group,
        dead_letter_topic=dead_letter_topic,
        write_dead_letter=write_dead_letter,
        policy=policy,
        sleep=sleep,
        watch=watch,
        clock=clock,
    )


async def handle_reliably(
    attempt: Callable[[], Awaitable[Any]],
    record: ConsumerRecord,
    cloud_event: CloudEvent,
    *,
    group: str,
    dead_letter_topic: str,
    write_dead_letter: DeadLetterWriter,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    watch: OutageWatch | None = None,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Run `attempt` (the handling of `record`) until it succeeds, waiting out infrastructure
    outages without limit; park it when it awaits an earlier event (for up to
    `policy.dependency_wait` in all); dead-letter it when it is malformed, permanently refused,
    still awaiting after that, or failed `policy.max_attempts` times for another reason.
    `write_dead_letter` writes to any topic: parking uses it to put the record back on its own."""
    with (
        log_context(dossier_code=cloud_event.subject, event_id=cloud_event.id),
        ExitStack() as outage_held,
    ):
        attempt_no = 0  # failures not caused by the infrastructure
        outage = 0  # consecutive infrastructure failures
        awaited = 0  # tries that found the earlier event missing
        while True:
            try:
                await attempt()
                return Outcome.HANDLED
            except (MalformedEvent, ValidationError) as exc:  # the data does not fit the contract
                await _dead_letter(
                    record, group, dead_letter_topic, write_dead_letter, "malformed", exc, 0
                )
                return Outcome.DEAD_LETTERED
            except PermanentError as exc:
                await _dead_letter(
                    record,
                    group,
                    dead_letter_topic,
                    write_dead_letter,
                    "permanent",
                    exc,
                    attempt_no + 1,
                )
                return Outcome.DEAD_LETTERED
            except AwaitingEarlierEvent as exc:
                awaited += 1
                CONSUMER_RETRIES.labels(record.topic, group).inc()
                if awaited < policy.max_attempts:  # usually only moments away
                    await _pause(policy.backoff(awaited), exc, group, watch, sleep)
                    continue
                return await _park(
                    record, exc, group, dead_letter_topic, write_dead_letter, policy, clock()
                )
            except Exception as exc:
                # Waiting without limit needs a way out at shutdown: the watch's stop signal.
                # A consumer without one (a tool, a test) keeps the bounded retries.
                if watch is not None and is_transient(exc):
                    CONSUMER_RETRIES.labels(record.topic, group).inc()
                    outage += 1
                    if outage == 1 and watch is not None:  # not ready until this event passes
                        outage_held.enter_context(watch.waiting_out(group))
                    await wait_out(exc, outage, group, policy, watch, sleep)
                    continue
                attempt_no += 1
                if attempt_no >= policy.max_attempts:
                    await _dead_letter(
                        record,
                        group,
                        dead_letter_topic,
                        write_dead_letter,
                        "exhausted",
                        exc,
                        attempt_no,
                    )
                    return Outcome.DEAD_LETTERED
                CONSUMER_RETRIES.labels(record.topic, group).inc()
                delay = policy.backoff(attempt_no)
                log.warning(
                    "attempt %d failed (%s); retrying in %.2fs", attempt_no, describe(exc), delay
                )
                await sleep(delay)


async def wait_out(
    exc: BaseException,
    outage: int,
    group: str,
    policy: RetryPolicy,
    watch: OutageWatch | None,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Sleep before the next try of an event that met an infrastructure outage; a service that
    stops ends the wait, leaving the event uncommitted."""
    delay = policy.backoff(outage, cap=policy.outage_max_delay)
    log.warning("infrastructure unavailable (%s); trying again in %.1fs", describe(exc), delay)
    await _pause(delay, exc, group, watch, sleep)


async def _park(
    record: ConsumerRecord,
    error: AwaitingEarlierEvent,
    group: str,
    dead_letter_topic: str,
    write: DeadLetterWriter,
    policy: RetryPolicy,
    now: float,
) -> Outcome:
    """Put `record` back at the end of its topic (same key, so the same partition; same headers,
    so the same event id: applying it stays idempotent), unless it has been parked for
    `policy.dependency_wait` already: then it goes to the dead letters."""
    headers = {name: raw.decode(errors="replace") for name, raw in record.headers or ()}
    since = _parked_since(headers.get(PARKED_SINCE_HEADER), now)
    if now - since >= policy.dependency_wait:
        await _dead_letter(record, group, dead_letter_topic, write, "awaiting", error, 0)
        return Outcome.DEAD_LETTERED
    headers[PARKED_SINCE_HEADER] = datetime.fromtimestamp(since, UTC).isoformat()
    await write(record.topic, record.value or b"", record.key, headers)
    EVENTS_PARKED.labels(record.topic, group).inc()
    log.info("%s: parked at the end of %s", describe(error), record.topic)
    return Outcome.PARKED


def _parked_since(header: str | None, now: float) -> float:
    try:
        return datetime.fromisoformat(header).timestamp() if header else now
    except ValueError:
        return now


async def _pause(
    delay: float,
    exc: BaseException,
    group: str,
    watch: OutageWatch | None,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Sleep `delay` before trying an event again; a service that stops ends the wait, leaving
    the event uncommitted (redelivered after the restart)."""
    if watch is None:
        await sleep(delay)
    elif watch.stopping.is_set() or await wait_for_event(watch.stopping, delay):
        raise StoppedDuringOutage(group) from exc


async def _dead_letter(
    record: ConsumerRecord,
    group: str,
    dead_letter_topic: str,
    write: DeadLetterWriter,
    reason: str,
    error: BaseException,
    attempts: int,
) -> None:
    headers = {name: raw.decode(errors="replace") for name, raw in record.headers or ()}
    headers.update(
        {
            "dlq_reason": reason,
            "dlq_error": describe(error),
            "dlq_attempts": str(attempts),
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_group": group,
            "dlq_failed_at": datetime.now(UTC).isoformat(),
        }
    )
    await write(dead_letter_topic, record.value or b"", record.key, headers)
    DEAD_LETTERS.labels(record.topic, group, reason).inc()
    log.error(
        "message sent to %s (%s): %s",
        dead_letter_topic,
        reason,
        headers["dlq_error"],
        extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
    )


@dataclass(frozen=True)
class Route:
    """What to do with the records of one topic: the event model expected and its handler."""

    model: type[Contract]
    handler: EventHandler


def subscribe(
    broker: KafkaBroker,
    *,
    group: str,
    routes: Mapping[str, Route],
    policy: RetryPolicy,
    dead_letter_topic: Callable[[str], str],
    watch: OutageWatch | None = None,
    commit_interval: float = 0.0,
    **subscriber_options: Any,
) -> Any:
    """Subscribe `group` to every topic of `routes`, one typed FastStream handler per route.

    FastStream does the consuming: one subscriber (so one group membership and one rebalance at
    start) for all the topics, the CloudEvents binary-mode parser and the contract decoder below,
    a filter per (topic, event type) choosing the handler, and `ReliableConsumption` as the
    router's middleware for retries, outages and dead letters. Offsets of handled events are
    committed together every `commit_interval` seconds (`shared.runtime.commits`; 0: each one).
    """

    async def write_dead_letter(
        topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await broker.publish(value, topic, key=key, headers=headers)

    settings = _Reliability(group, policy, dead_letter_topic, write_dead_letter, watch)
    router = KafkaRouter(middlewares=[partial(ReliableConsumption, reliability=settings)])
    subscriber_options.setdefault("auto_offset_reset", "earliest")
    commits = CoalescedCommits(commit_interval)

    async def parse(
        record: ConsumerRecord, parse: Callable[[ConsumerRecord], Awaitable[StreamMessage[Any]]]
    ) -> StreamMessage[Any]:
        message = await parse_cloud_event(record, parse)
        commits.attach(message, record)
        return message

    subscriber = router.subscriber(
        *routes,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        listener=commits.listener(),
        parser=parse,
        decoder=decode_contract,
        **subscriber_options,
    )
    for topic, route in routes.items():
        subscriber(filter=_carries(topic, route.model))(_typed_handler(route))
    broker.include_router(router)
    return subscriber


async def parse_cloud_event(
    record: ConsumerRecord, parse: Callable[[ConsumerRecord], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """FastStream's Kafka message, with its CloudEvent (binary mode: `ce_*` headers) attached;
    `MalformedEvent` when the headers do not make one."""
    try:
        message = await parse(record)
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"header is not UTF-8: {exc}") from exc
    message.cloud_event = CloudEvent.from_kafka(record.value, record.headers)  # type: ignore[attr-defined]
    return message


async def decode_contract(message: StreamMessage[Any], decode: Any) -> Contract:
    """The contract model the CloudEvent carries (`MalformedEvent` when its data does not fit)."""
    cloud_event: CloudEvent = message.cloud_event  # type: ignore[attr-defined]
    return unwrap(cloud_event)


def _carries(topic: str, model: type[Contract]) -> Callable[[StreamMessage[Any]], Awaitable[bool]]:
    # Asynchronous, as everything FastStream calls per event: it runs a plain function on a
    # worker thread.
    async def carries(message: StreamMessage[Any]) -> bool:
        return bool(
            message.raw_message.topic == topic
            and message.headers.get("ce_type") == model.event_type
        )

    return carries


# The CloudEvent of the record being handled, set by `ReliableConsumption` for the handler.
# FastStream would inject the message (`Context("message")`), but fast-depends resolves that
# synchronous field on a worker thread: two thread switches per event.
_HANDLED_EVENT: ContextVar[CloudEvent] = ContextVar("handled_cloud_event")


def _typed_handler(route: Route) -> Callable[..., Awaitable[None]]:
    """A FastStream handler whose only argument is typed with the route's contract model."""

    async def handle(event: Contract) -> None:
        await route.handler(event, _HANDLED_EVENT.get())

    handle.__annotations__ = {"event": route.model, "return": None}
    handle.__name__ = f"on_{route.model.__name__}"
    return handle


@dataclass(frozen=True)
class _Reliability:
    group: str
    policy: RetryPolicy
    dead_letter_topic: Callable[[str], str]
    write_dead_letter: DeadLetterWriter
    watch: OutageWatch | None


class ReliableConsumption(BaseMiddleware[Any, Any]):
    """Retries, outages and dead letters around each handled record (`handle_reliably`), and the
    dead-letter topic for records that never reach a handler: not a CloudEvent, or an event type
    no handler of the topic takes."""

    def __init__(self, msg: Any, /, *, context: Any, reliability: _Reliability) -> None:
        super().__init__(msg, context=context)
        self.reliability = reliability

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        settings = self.reliability
        record: ConsumerRecord = msg.raw_message

        async def attempt() -> None:
            msg.clear_cache()  # decode afresh on every try
            _HANDLED_EVENT.set(msg.cloud_event)  # type: ignore[attr-defined]
            await call_next(msg)

        await handle_reliably(
            attempt,
            record,
            msg.cloud_event,  # type: ignore[attr-defined]
            group=settings.group,
            dead_letter_topic=settings.dead_letter_topic(record.topic),
            write_dead_letter=settings.write_dead_letter,
            policy=settings.policy,
            watch=settings.watch,
        )

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        if not isinstance(exc_val, MalformedEvent | SubscriberNotFound):
            return False  # handled, or a failure to redeliver (offset not committed)
        record: ConsumerRecord = self.msg
        settings = self.reliability
        error = (
            exc_val
            if isinstance(exc_val, MalformedEvent)
            else MalformedEvent(f"unexpected event type {_header(record, 'ce_type')!r}")
        )
        await _dead_letter(
            record,
            settings.group,
            settings.dead_letter_topic(record.topic),
            settings.write_dead_letter,
            "malformed",
            error,
            0,
        )
        return True  # dead-lettered: the offset is committed


def _header(record: ConsumerRecord, name: str) -> str:
    raw = dict(record.headers or ()).get(name, b"")
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

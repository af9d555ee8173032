"""Reliable consumption: parse, handle, wait out outages, dead-letter what cannot succeed.

A failure of the infrastructure (`shared.failures.is_transient`) is retried without limit, the
consumer holding the event (so later events of the same dossier never overtake it) and the
service reporting not-ready meanwhile. Any other failure gets `max_attempts` tries, then the event
goes to the dead-letter topic with a description free of input values.

The offset is committed only after `handle_record` returns, i.e. after the handler succeeded or
the message was safely written to the dead-letter topic. If even that write fails the exception
propagates, FastStream seeks back, and the message is redelivered: nothing is silently dropped.
Handlers must be idempotent (see `shared.idempotency`), since redelivery happens.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.background import wait_for_event
from shared.cloudevents import CloudEvent, Contract, MalformedEvent, unwrap
from shared.failures import OutageWatch, StoppedDuringOutage, describe, is_transient
from shared.logging import log_context
from shared.metrics import CONSUMER_RETRIES, DEAD_LETTERS

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

    def backoff(self, failed_attempts: int, cap: float | None = None) -> float:
        """Exponential backoff with full jitter after the n-th failed attempt."""
        limit = self.max_delay if cap is None else cap
        return random.uniform(0, min(limit, self.base_delay * 2 ** min(failed_attempts - 1, 30)))


class Outcome(StrEnum):
    HANDLED = "handled"
    DEAD_LETTERED = "dead-lettered"


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
) -> Outcome:
    try:
        cloud_event = CloudEvent.from_kafka(record.value, record.headers)
        event = unwrap(cloud_event, expected)
    except MalformedEvent as exc:
        await _dead_letter(record, group, dead_letter_topic, write_dead_letter, "malformed", exc, 0)
        return Outcome.DEAD_LETTERED

    with (
        log_context(dossier_code=cloud_event.subject, event_id=cloud_event.id),
        ExitStack() as outage_held,
    ):
        attempt = 0  # failures not caused by the infrastructure
        outage = 0  # consecutive infrastructure failures
        while True:
            try:
                await handler(event, cloud_event)
                return Outcome.HANDLED
            except PermanentError as exc:
                await _dead_letter(
                    record,
                    group,
                    dead_letter_topic,
                    write_dead_letter,
                    "permanent",
                    exc,
                    attempt + 1,
                )
                return Outcome.DEAD_LETTERED
            except Exception as exc:
                if is_transient(exc):
                    CONSUMER_RETRIES.labels(record.topic, group).inc()
                    outage += 1
                    if outage == 1 and watch is not None:  # not ready until this event passes
                        outage_held.enter_context(watch.waiting_out(group))
                    await wait_out(exc, outage, group, policy, watch, sleep)
                    continue
                attempt += 1
                if attempt >= policy.max_attempts:
                    await _dead_letter(
                        record,
                        group,
                        dead_letter_topic,
                        write_dead_letter,
                        "exhausted",
                        exc,
                        attempt,
                    )
                    return Outcome.DEAD_LETTERED
                CONSUMER_RETRIES.labels(record.topic, group).inc()
                delay = policy.backoff(attempt)
                log.warning(
                    "attempt %d failed (%s); retrying in %.2fs", attempt, describe(exc), delay
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
    **subscriber_options: Any,
) -> Any:
    """Register one reliable consumer in `group` for every topic of `routes`.

    One consumer per group (rather than one per topic) means a single group membership, so a
    service joins its group with one rebalance instead of one per topic.
    """

    async def write_dead_letter(
        topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await broker.publish(value, topic, key=key, headers=headers)

    subscriber_options.setdefault("auto_offset_reset", "earliest")
    subscriber = broker.subscriber(
        *routes,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # The body is parsed by `handle_record`, so that a malformed one reaches the DLQ.
        decoder=_raw_body,
        **subscriber_options,
    )

    async def consume(body: bytes, message: KafkaMessage) -> None:
        record: ConsumerRecord = message.raw_message  # one record: this is not a batch subscriber
        route = routes[record.topic]
        await handle_record(
            record,
            handler=route.handler,
            expected=[route.model],
            group=group,
            dead_letter_topic=dead_letter_topic(record.topic),
            write_dead_letter=write_dead_letter,
            policy=policy,
            watch=watch,
        )

    consume.__name__ = f"consume_{group}"
    return subscriber(consume)


async def _raw_body(message: Any) -> bytes:
    return bytes(message.body)

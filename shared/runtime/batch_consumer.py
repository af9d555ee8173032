"""Batch consumption, for readers whose work is cheap per record and costly per round trip.

The public projection (produce many records, wait once) and the webhook intake (insert many
deliveries at once) read with this instead of `shared.runtime.consumer.subscribe`. The guarantees
are the same: offsets are committed only after the batch handler returned (together, at most
`consumer_commit_interval_seconds` later: `shared.runtime.commits`); a malformed record goes
to the dead-letter topic at once; a batch that keeps failing is retried record by record through
`shared.runtime.consumer.handle_record`, so one poisoned record is dead-lettered and the others
pass;
a batch that fails because the infrastructure is away is held and retried until it is back.
Handlers must be idempotent: a batch is redelivered whole after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from faststream.kafka import KafkaBroker

from shared.contracts.cloudevents import CloudEvent, Contract, MalformedEvent, unwrap
from shared.contracts.topics import dead_letter_topic
from shared.runtime.commits import CoalescedCommits
from shared.runtime.consumer import (
    PermanentError,
    RetryPolicy,
    _dead_letter,
    handle_record,
    wait_out,
)
from shared.runtime.failures import (
    AwaitingEarlierEvent,
    OutageWatch,
    StoppedDuringOutage,
    describe,
    is_transient,
)
from shared.runtime.kafka import (
    aiokafka_security_options,
    idle_consumer_options,
    long_poll_when_idle,
    wait_for_partitions,
)
from shared.runtime.metrics import CONSUMER_RETRIES
from shared.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parsed:
    """One record with its CloudEvent and validated contract model."""

    record: ConsumerRecord
    cloud_event: CloudEvent
    event: Any


BatchHandler = Callable[[list[Parsed]], Awaitable[None]]
AssignmentHandler = Callable[[set[TopicPartition], set[TopicPartition]], Awaitable[None]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: BatchConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.consumer.on_revoked()
        if self.consumer.on_assignment:
            await self.consumer.on_assignment(set(), set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.consumer.on_assignment:
            await self.consumer.on_assignment(set(assigned), set())


class BatchConsumer:
    def __init__(
        self,
        settings: ServiceSettings,
        broker: KafkaBroker,
        *,
        group: str,
        routes: Mapping[str, type[Contract]],
        handle: BatchHandler,
        policy: RetryPolicy,
        max_records: int = 500,
        on_assignment: AssignmentHandler | None = None,
        watch: OutageWatch | None = None,
    ) -> None:
        """`group` is the logical group (dead-letter names); its suffixed name is the Kafka one.

        `routes` maps each (suffixed) topic to the model expected on it. `on_assignment(assigned,
        revoked)` is told of every rebalance, for handlers that keep per-partition state.
        """
        self.settings = settings
        self.broker = broker
        self.group = group
        self.routes = dict(routes)
        self.handle = handle
        self.policy = policy
        self.max_records = max_records
        self.on_assignment = on_assignment
        self.watch = watch
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._busy = False  # a batch is in hand (read, not handled yet)
        # Handled batches' offsets, committed together (and before a rebalance or a stop).
        self._commits = CoalescedCommits(settings.consumer_commit_interval_seconds)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.settings.consumer_group(self.group),
            client_id=f"{self.settings.service_name}-{self.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **idle_consumer_options(self.settings),
            **aiokafka_security_options(self.settings),
        )
        await self._consumer.start()
        self._commits.bind(self._consumer)
        long_poll_when_idle(self._consumer, self.settings)
        self._task = asyncio.create_task(self._run(), name=f"batch-consumer-{self.group}")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Consuming while inside (a service's lifecycle hook)."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def stop(self, grace: float = 15.0) -> None:
        """Let the batch in hand finish (up to `grace` seconds), commit what was handled, then
        leave the group."""
        self._stopping.set()
        if self.watch is not None:
            self.watch.stopping.set()  # a batch waiting out an outage stops waiting
        if self._task:
            if not self._in_hand():
                self._task.cancel()  # waiting for records, none in hand: stop at once
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                self._task.cancel()  # uncommitted: redelivered to the next owner
            except asyncio.CancelledError:
                if not self._task.cancelled():
                    raise  # this stop itself was cancelled
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        await wait_for_partitions(self._consumer, self.routes)
        self._consumer.subscribe(list(self.routes), listener=_Listener(self))
        while not self._stopping.is_set():
            try:
                # A long wait costs nothing: records end it as they arrive, and `stop` cancels
                # it when no batch is in hand.
                batches = await self._consumer.getmany(
                    timeout_ms=1000, max_records=self.max_records
                )
                records = in_time_order(batches)
                if not records:
                    continue
                self._busy = True
                await self.process(records)
                await self._commits.commit(_positions_after(records))
            except StoppedDuringOutage:
                return  # uncommitted: read again after the restart
            except asyncio.CancelledError:
                raise
            except Exception:  # a dead-letter write failed: seek back and try again
                log.exception("batch of %s failed; it will be read again", self.group)
                await self._rewind()
                await asyncio.sleep(self.policy.backoff(1) + 0.1)
            finally:
                self._busy = False

    def _in_hand(self) -> bool:
        """Records read and not committed yet (a stop then waits for them)."""
        return self._busy

    async def on_revoked(self) -> None:
        """Before partitions move to another member: commit what was handled (a batch in hand
        is committed after it, or read again by the new owner if the commit fails)."""
        await self._commits.flush()

    async def _rewind(self) -> None:
        """Read again from the last commit (what was handled since is committed first)."""
        assert self._consumer is not None
        await self._commits.flush()
        for partition in self._consumer.assignment():
            committed = await self._consumer.committed(partition)
            if committed is None:
                await self._consumer.seek_to_beginning(partition)
            else:
                self._consumer.seek(partition, committed)

    async def process(self, records: list[ConsumerRecord]) -> None:
        """Parse the records, hand the valid ones to the handler, dead-letter the others."""
        parsed: list[Parsed] = []
        for record in records:
            try:
                cloud_event = CloudEvent.from_kafka(record.value, record.headers)
                event = unwrap(cloud_event, [self.routes[record.topic]])
            except MalformedEvent as exc:
                await _dead_letter(
                    record, self.group, self._dlq(record), self._write_dlq, "malformed", exc, 0
                )
                continue
            parsed.append(Parsed(record, cloud_event, event))
        if not parsed:
            return
        with ExitStack() as outage_held:
            attempt = outage = 0
            while True:
                try:
                    await self.handle(parsed)
                    return
                except StoppedDuringOutage:
                    raise
                except AwaitingEarlierEvent:
                    break  # waited for and parked one by one, below (nothing was written)
                except PermanentError as exc:
                    if len(parsed) > 1:  # which record is refused: see below, one by one
                        break
                    # Refused for good: handled again alone it would be refused again (and
                    # whatever the handler counts on the way, counted twice).
                    record = parsed[0].record
                    await _dead_letter(
                        record, self.group, self._dlq(record), self._write_dlq, "permanent", exc, 1
                    )
                    return
                except Exception as exc:
                    CONSUMER_RETRIES.labels(parsed[0].record.topic, self.group).inc()
                    # The records are fine: hold them until it is back (with a stop signal).
                    if self.watch is not None and is_transient(exc):
                        outage += 1
                        if outage == 1 and self.watch is not None:
                            outage_held.enter_context(self.watch.waiting_out(self.group))
                        await wait_out(
                            exc, outage, self.group, self.policy, self.watch, asyncio.sleep
                        )
                        continue
                    attempt += 1
                    if attempt >= self.policy.max_attempts or len(parsed) == 1:
                        log.warning(
                            "batch failed (%s); handling its records one by one", describe(exc)
                        )
                        break
                    await asyncio.sleep(self.policy.backoff(attempt))
        for item in parsed:

            async def alone(_event: Any, _cloud_event: CloudEvent, item: Parsed = item) -> None:
                await self.handle([item])

            await handle_record(
                item.record,
                handler=alone,
                expected=[self.routes[item.record.topic]],
                group=self.group,
                dead_letter_topic=self._dlq(item.record),
                write_dead_letter=self._write_dlq,
                policy=self.policy,
                watch=self.watch,
            )

    def _dlq(self, record: ConsumerRecord) -> str:
        return dead_letter_topic(record.topic, self.group)

    async def _write_dlq(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await self.broker.publish(value, topic, key=key, headers=headers)


def per_key_in_order(
    handle_one: Callable[[Parsed], Awaitable[None]], concurrency: int = 16
) -> BatchHandler:
    """A batch handler for handlers that are one event at a time and wait on round trips: the
    records of one key (one dossier: events are keyed by their subject) in the order read, one
    after the other; different keys concurrently, up to `concurrency` at once. Every chain runs
    to its end; then the first failure is raised (the batch is retried, its handlers are
    idempotent)."""

    async def handle(batch: list[Parsed]) -> None:
        chains: dict[bytes | None, list[Parsed]] = defaultdict(list)
        for item in batch:
            chains[item.record.key].append(item)
        slots = asyncio.Semaphore(concurrency)

        async def chain(items: list[Parsed]) -> None:
            async with slots:
                for item in items:
                    await handle_one(item)

        results = await asyncio.gather(*map(chain, chains.values()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    return handle


def in_time_order(batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> list[ConsumerRecord]:
    """One read's records, each partition's in offset order, the partitions merged by the time
    the records were produced: a dossier's events read together from two topics (submitted, then
    processed) are handled as they happened, not topic by topic."""
    return list(heapq.merge(*batches.values(), key=lambda record: record.timestamp))


def _positions_after(records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
    """Each partition's position just past the last of `records` read from it."""
    positions: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        positions[partition] = max(positions.get(partition, 0), record.offset + 1)
    return positions


def routes_for(
    settings: ServiceSettings, models: list[type[Contract]]
) -> dict[str, type[Contract]]:
    """The (suffixed) topic of each model, as `BatchConsumer(routes=...)` takes them."""
    return {settings.topic(model.topic): model for model in models}


class _EarlierFailed(Exception):
    """A key's earlier records failed: its later ones wait to be read again after them."""


@dataclass
class _Read:
    """What one `getmany` returned: a task per key, and the offsets to commit once all are done."""

    tasks: list[asyncio.Task[None]]
    offsets: dict[TopicPartition, int]
    count: int

    def done(self) -> bool:
        return all(task.done() for task in self.tasks)

    def failure(self) -> BaseException | None:
        for task in self.tasks:
            if task.cancelled():
                return RuntimeError("a task in hand was cancelled")
            if (error := task.exception()) is not None:
                return error
        return None


class KeyedStreamConsumer(BatchConsumer):
    """A `BatchConsumer` that does not hold a read until its slowest key is done: each key's
    records of a read are handed to their own task, which starts once the key's records of the
    reads before are done (each key's order) and while fewer than `concurrency` run, and the
    consumer reads on meanwhile, up to `max_in_hand` records read and not done. A read's offsets
    are committed once it and every read before it are done, so a restart or a new owner reads
    again from the oldest record not done (the handlers are idempotent, as everywhere).

    For per-key handlers that wait on round trips (`per_key_in_order`), where a batch's slowest
    dossier held up every event read after it: at 50 dossiers/s the receipts waited 100-400 ms
    behind the batch before theirs. Failures are handled per key and read as in `process`; a
    read that still fails (a dead-letter write did) stops the reading until every task in hand
    is done, then the consumer reads again from the last commit."""

    def __init__(
        self,
        *args: Any,
        concurrency: int = 16,
        max_in_hand: int = 1000,
        linger: float = 0.0,
        **kwargs: Any,
    ) -> None:
        """`linger`: seconds to let records gather after a read that was not full, before the
        next read (for work that can wait that long: a quiet stream's events are then handled
        several at a time, sharing their writes, instead of one round of writes each)."""
        super().__init__(*args, **kwargs)
        self.concurrency = concurrency
        self.max_in_hand = max_in_hand
        self.linger = linger
        self._reads: list[_Read] = []
        self._latest: dict[bytes | None, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._commit_lock = asyncio.Lock()

    async def _run(self) -> None:
        assert self._consumer is not None
        await wait_for_partitions(self._consumer, self.routes)
        self._consumer.subscribe(list(self.routes), listener=_Listener(self))
        try:
            while not self._stopping.is_set():
                try:
                    await self._read_and_commit()
                except StoppedDuringOutage:
                    return  # uncommitted: read again after the restart
                except Exception:  # a dead-letter write failed: read again from the commit
                    log.exception("a batch of %s failed; it will be read again", self.group)
                    await self._settle_all()
                    self._reads = []
                    await self._rewind()
                    await asyncio.sleep(self.policy.backoff(1) + 0.1)
            await self._settle_all()
            await self._commit_done()
        finally:
            for read in self._reads:  # stopped or cancelled with tasks in hand: not committed
                for task in read.tasks:
                    task.cancel()

    async def _read_and_commit(self) -> None:
        assert self._consumer is not None
        # While tasks are in hand, come back often to commit what they finished.
        batches = await self._consumer.getmany(
            timeout_ms=100 if self._reads else 1000, max_records=self.max_records
        )
        records = in_time_order(batches)
        if records:
            self._hand_out(records)
            if self.linger and len(records) < self.max_records:
                with contextlib.suppress(TimeoutError):  # a stop ends the wait
                    await asyncio.wait_for(self._stopping.wait(), self.linger)
        while self._reads and sum(read.count for read in self._reads) >= self.max_in_hand:
            await asyncio.wait(self._reads[0].tasks)
            await self._commit_done()
        await self._commit_done()

    def _in_hand(self) -> bool:
        return bool(self._reads)

    def _hand_out(self, records: list[ConsumerRecord]) -> None:
        by_key: dict[bytes | None, list[ConsumerRecord]] = defaultdict(list)
        for record in records:
            by_key[record.key].append(record)
        tasks = []
        for key, own in by_key.items():
            task = asyncio.create_task(self._chain(self._latest.get(key), own))
            self._latest[key] = task
            task.add_done_callback(partial(self._forget, key))
            tasks.append(task)
        self._reads.append(_Read(tasks, _positions_after(records), len(records)))

    def _forget(self, key: bytes | None, task: asyncio.Task[None]) -> None:
        if self._latest.get(key) is task:
            del self._latest[key]

    async def _chain(
        self, previous: asyncio.Task[None] | None, records: list[ConsumerRecord]
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None:
                raise _EarlierFailed()
        async with self._slots:
            await self.process(records)

    async def _commit_done(self) -> None:
        """Commit the reads done in order from the oldest; raise the failure of the first read
        that failed (its offsets and those after are not committed)."""
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            failure: BaseException | None = None
            while self._reads and self._reads[0].done():
                read = self._reads[0]
                if (failure := read.failure()) is not None:
                    break
                offsets.update(read.offsets)
                self._reads.pop(0)
            await self._commit(offsets)
            if failure is not None:
                self._reads.pop(0)
                raise failure

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if offsets:
            await self._commits.commit(offsets)

    async def _settle_all(self) -> None:
        """Wait until every task in hand is done (their failures were logged by `process`)."""
        tasks = [task for read in self._reads for task in read.tasks]
        if tasks:
            await asyncio.wait(tasks)

    async def on_revoked(self) -> None:
        """Before partitions move to another member: finish what is in hand and commit it. What
        is not committed then is read again (positions restart from the commits after a
        rebalance)."""
        try:
            async with asyncio.timeout(10):
                await self._settle_all()
        except TimeoutError:
            log.warning("%s: records still in hand at a rebalance are read again", self.group)
        try:
            await self._commit_done()
        except Exception:
            log.warning("%s: a failed batch at a rebalance is read again", self.group)
        await self._commits.flush()
        self._reads = []

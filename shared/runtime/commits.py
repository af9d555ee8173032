"""Coalesced offset commits: one commit per consumer and interval instead of one per event.

FastStream acknowledges a handled message by committing the consumer's position, one round trip
to the group coordinator and one write to `__consumer_offsets` per event. On this platform's
machines each round trip costs CPU on both sides (bench/bench_e2e.py), so a handled record's
offset is only remembered here and committed with the others at most `interval` seconds later.

- What is committed is the position just past each handled record, never the consumer's current
  position: that may already be past a record still being handled.
- Pending offsets are committed before the consumer gives up a partition (rebalance) and before
  it stops, so a graceful stop or a rebalance redelivers nothing.
- A crash loses at most the last interval's commits: those events are delivered again, and every
  handler is idempotent (the platform's rule; see `shared.runtime.idempotency`).
- A commit refused because the group rebalanced meanwhile is dropped: the partition's new owner
  reads those events again, as it would after a crash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError

log = logging.getLogger(__name__)

STOP_FLUSH_TIMEOUT = 5.0  # seconds a stopping consumer waits to commit what it handled
# A failed commit is retried at most this often (also with a zero interval: no tight loop while
# the coordinator is away).
RETRY_AFTER_FAILED_COMMIT = 0.5


class CoalescedCommits:
    """The pending commits of one subscriber's consumer (FastStream's `message.consumer`)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()  # one commit in flight; a flush waits for the one before
        self._flushes: set[asyncio.Future[None]] = set()

    def attach(self, message: Any, record: ConsumerRecord) -> None:
        """Make `message.ack()` remember `record` as handled instead of committing at once.
        FastStream's in-memory test consumer and a zero interval keep the plain commit."""
        consumer = message.consumer
        if self.interval <= 0 or not isinstance(consumer, AIOKafkaConsumer):
            return
        if consumer is not self._consumer:
            self.bind(consumer)
        message.consumer = _RecordAck(self, consumer, record)

    def handled(self, record: ConsumerRecord) -> None:
        partition = TopicPartition(record.topic, record.partition)
        self._pending[partition] = max(self._pending.get(partition, 0), record.offset + 1)
        self._flush_soon()

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Remember the positions `offsets` (just past handled records) for the next commit; at
        once with a zero interval. The consumer must be `bind`-ed."""
        for partition, offset in offsets.items():
            self._pending[partition] = max(self._pending.get(partition, 0), offset)
        if self.interval <= 0:
            await self.flush()
        else:
            self._flush_soon()

    def _flush_soon(self, delay: float | None = None) -> None:
        if self._timer is None:
            delay = self.interval if delay is None else delay
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush())
        self._flushes.add(task)  # a reference until it is done
        task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        """Commit what is pending for the partitions the consumer still owns."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            consumer, pending, self._pending = self._consumer, self._pending, {}
            if consumer is None or not pending:
                return
            owned = consumer.assignment()
            offsets = {tp: offset for tp, offset in pending.items() if tp in owned}
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("offsets not committed after a rebalance (read again): %s", exc)
            except Exception as exc:  # the broker away, a connection lost: try again, even if no
                # other event comes (else the group would look stalled, its lag never cleared)
                retry = max(self.interval, RETRY_AFTER_FAILED_COMMIT)
                log.warning("offset commit failed (%s); retried in %.1f s", exc, retry)
                for tp, offset in offsets.items():
                    self._pending[tp] = max(self._pending.get(tp, 0), offset)
                self._flush_soon(retry)

    def listener(self) -> ConsumerRebalanceListener:
        """Commits what is pending before partitions are taken away."""
        return _FlushOnRevoke(self)

    def bind(self, consumer: AIOKafkaConsumer) -> None:
        """Follow a (new) consumer, and flush before it stops: FastStream stops the consumer
        once its last handler has returned (and a `BatchConsumer` once its batch is done)."""
        self._consumer = consumer
        stop = consumer.stop

        async def flush_then_stop() -> None:
            try:
                await asyncio.wait_for(self.flush(), STOP_FLUSH_TIMEOUT)
            except TimeoutError:  # the coordinator is away: those events are read again
                log.warning("pending offsets not committed before stopping")
            finally:
                await stop()

        consumer.stop = flush_then_stop


class _RecordAck:
    """What FastStream's message calls to acknowledge (`commit`) or redeliver (`seek`) one
    record."""

    def __init__(
        self, commits: CoalescedCommits, consumer: AIOKafkaConsumer, record: ConsumerRecord
    ) -> None:
        self._commits = commits
        self._consumer = consumer
        self._record = record

    async def commit(self) -> None:
        self._commits.handled(self._record)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(partition, offset)


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, commits: CoalescedCommits) -> None:
        self._commits = commits

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._commits.flush()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None

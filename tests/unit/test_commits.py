"""Coalesced offset commits: what is handled is committed, also after a failed commit."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord, TopicPartition

from shared.runtime.commits import CoalescedCommits

PARTITION = TopicPartition("t", 0)


def record(offset: int) -> ConsumerRecord:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[],
    )


class FlakyConsumer:
    """Refuses its first `failures` commits (the broker away), then records them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.committed: list[dict[TopicPartition, int]] = []
        self.done = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.committed.append(dict(offsets))
        self.done.set()

    async def stop(self) -> None:
        return None


async def test_handled_offsets_are_committed_once_together() -> None:
    consumer = FlakyConsumer(failures=0)
    commits = CoalescedCommits(0.01)
    commits.bind(consumer)  # type: ignore[arg-type]
    for offset in range(5):
        commits.handled(record(offset))
    await asyncio.wait_for(consumer.done.wait(), 5)
    assert consumer.committed == [{PARTITION: 5}]


async def test_a_failed_commit_is_retried_without_another_event() -> None:
    """Else a group whose last commit failed in an outage keeps its lag until the next event,
    and looks stalled to monitoring."""
    consumer = FlakyConsumer(failures=2)
    commits = CoalescedCommits(0.01)
    commits.bind(consumer)  # type: ignore[arg-type]
    commits.handled(record(41))
    await asyncio.wait_for(consumer.done.wait(), 5)
    assert consumer.committed == [{PARTITION: 42}]


async def test_stopping_commits_what_is_pending_first() -> None:
    consumer = FlakyConsumer(failures=0)
    commits = CoalescedCommits(60)
    commits.bind(consumer)  # type: ignore[arg-type]
    commits.handled(record(6))
    await consumer.stop()  # the wrapped stop: flush, then stop
    assert consumer.committed == [{PARTITION: 7}]


async def test_with_no_interval_each_commit_is_at_once_and_a_failed_one_is_not_hammered() -> None:
    """A batch reader configured to commit each read (interval 0): the commit is made before
    `commit` returns; one refused while the broker is away is retried later, not in a loop."""
    consumer = FlakyConsumer(failures=1)
    commits = CoalescedCommits(0)
    commits.bind(consumer)  # type: ignore[arg-type]
    await commits.commit({PARTITION: 3})
    await asyncio.sleep(0.2)
    assert consumer.attempts == 1 and not consumer.committed
    await asyncio.wait_for(consumer.done.wait(), 5)
    assert consumer.committed == [{PARTITION: 3}]
    await commits.commit({PARTITION: 4})
    assert consumer.committed[-1] == {PARTITION: 4}  # at once

"""`per_key_in_order`: one dossier's events in order, different dossiers at the same time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from shared.runtime.batch_consumer import Parsed, in_time_order, per_key_in_order


def item(key: str, n: int) -> Parsed:
    record = ConsumerRecord(
        topic="t",
        partition=0,
        offset=n,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=b"",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[],
    )
    return Parsed(record=record, cloud_event=None, event=(key, n))  # type: ignore[arg-type]


async def test_each_keys_events_are_handled_in_order_and_keys_overlap() -> None:
    started: list[Any] = []
    finished: list[Any] = []
    in_flight = 0
    most_at_once = 0

    async def handle(parsed: Parsed) -> None:
        nonlocal in_flight, most_at_once
        started.append(parsed.event)
        in_flight += 1
        most_at_once = max(most_at_once, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        finished.append(parsed.event)

    batch = [item(key, n) for n in range(3) for key in ("A", "B", "C")]
    await per_key_in_order(handle)(batch)

    for key in ("A", "B", "C"):
        assert [e for e in finished if e[0] == key] == [(key, 0), (key, 1), (key, 2)]
    assert most_at_once == 3  # one at a time per dossier, the three dossiers together
    assert sorted(finished) == sorted(e.event for e in batch)


async def test_concurrency_is_bounded() -> None:
    in_flight = 0
    most_at_once = 0

    async def handle(parsed: Parsed) -> None:
        nonlocal in_flight, most_at_once
        in_flight += 1
        most_at_once = max(most_at_once, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1

    await per_key_in_order(handle, concurrency=4)([item(f"K{n}", n) for n in range(20)])
    assert most_at_once == 4


async def test_a_failure_stops_its_own_dossier_only_and_is_raised_after_the_others() -> None:
    handled: list[Any] = []

    async def handle(parsed: Parsed) -> None:
        if parsed.event == ("A", 1):
            raise ConnectionError("database away")
        await asyncio.sleep(0.005)
        handled.append(parsed.event)

    batch = [item(key, n) for n in range(3) for key in ("A", "B")]
    with pytest.raises(ConnectionError):  # the exception itself, classifiable as an outage
        await per_key_in_order(handle)(batch)
    assert sorted(handled) == [("A", 0), ("B", 0), ("B", 1), ("B", 2)]  # not A 2: A stopped


def produced(topic: str, offset: int, at: int) -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=at,
        timestamp_type=0,
        key=b"G12-261207-0001",
        value=b"",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[],
    )


def test_a_read_from_two_topics_is_handled_in_the_order_the_events_happened() -> None:
    """A dossier's processed event and the submitted event before it, read together from two
    topics: the submitted first; within a partition, offsets decide (a clock that went back
    does not reorder them)."""
    processed = [produced("processed", 0, at=20), produced("processed", 1, at=40)]
    submitted = [produced("submitted", 0, at=10), produced("submitted", 1, at=50)]
    skewed = [produced("skewed", 0, at=60), produced("skewed", 1, at=5)]
    batches = {
        TopicPartition("processed", 0): processed,
        TopicPartition("submitted", 0): submitted,
        TopicPartition("skewed", 0): skewed,
    }
    order = [(r.topic, r.offset) for r in in_time_order(batches)]
    assert order[:4] == [("submitted", 0), ("processed", 0), ("processed", 1), ("submitted", 1)]
    assert order.index(("skewed", 0)) < order.index(("skewed", 1))
    assert len(order) == 6

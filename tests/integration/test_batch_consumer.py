"""Batch consumption against the real broker: a poisoned record in a batch is dead-lettered and
the rest pass; offsets are committed only after the batch was handled. The keyed stream
(`KeyedStreamConsumer`) does the same, and a slow dossier holds up neither the dossiers read
with it nor those read after it, only its own later events and the commit. Both commit the
offsets of handled reads together, not one commit per read."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierSubmitted
from shared.contracts.topics import TopicSpec, dead_letter_topic
from shared.runtime.batch_consumer import (
    BatchConsumer,
    KeyedStreamConsumer,
    Parsed,
    per_key_in_order,
)
from shared.runtime.consumer import PermanentError, RetryPolicy
from shared.runtime.kafka import create_broker, ensure_topics
from shared.runtime.settings import ServiceSettings
from tests.factories import dossier_code, submitted
from tests.kafka_helpers import read_records

KINDS = [BatchConsumer, KeyedStreamConsumer]


async def produce(
    bootstrap: str, topic: str, values: list[tuple[bytes, list]], key: bytes = b"k"
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in values:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def consumer_for(
    kafka_bootstrap: str,
    unique: str,
    topic: str,
    handle,
    group: str = "batch",
    kind: type[BatchConsumer] = BatchConsumer,
    commit_interval: float = 0.5,
    **options: float,
) -> tuple[BatchConsumer, object]:
    settings = ServiceSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_suffix=f".{unique}",
        consumer_commit_interval_seconds=commit_interval,
    )
    broker = create_broker(kafka_bootstrap, "batch-test")
    consumer = kind(
        settings,
        broker,
        group=group,
        routes={topic: DossierSubmitted},
        handle=handle,
        policy=RetryPolicy(max_attempts=2, base_delay=0.01),
        **options,
    )
    return consumer, broker


@pytest.mark.parametrize("kind", KINDS)
async def test_a_poisoned_record_is_dead_lettered_and_the_batch_passes(
    kafka_bootstrap: str, make_topic, unique: str, kind: type[BatchConsumer]
) -> None:
    topic = await make_topic("batch", partitions=1)
    dlq = dead_letter_topic(topic, "batch")
    await ensure_topics(kafka_bootstrap, [TopicSpec(dlq, 1, None)])
    events = [wrap(submitted(dossier_code(n)), "/t") for n in range(1, 6)]
    records = [(e.to_kafka().value, e.to_kafka().headers) for e in events]
    records.insert(2, (b"not a cloud event", []))
    await produce(kafka_bootstrap, topic, records)

    handled: list[str] = []
    all_seen = asyncio.Event()

    async def handle(batch: list[Parsed]) -> None:
        if any(item.event.dossier_code == dossier_code(4) for item in batch):
            raise RuntimeError("dossier 4 is refused downstream")
        handled.extend(item.event.dossier_code for item in batch)
        if len(set(handled)) == 4:
            all_seen.set()

    consumer, broker = consumer_for(kafka_bootstrap, unique, topic, handle, kind=kind)
    async with broker:  # type: ignore[attr-defined]
        await broker.start()  # type: ignore[attr-defined]
        await consumer.start()
        await asyncio.wait_for(all_seen.wait(), timeout=30)
        await consumer.stop()

    assert sorted(set(handled)) == [dossier_code(n) for n in (1, 2, 3, 5)]
    dead = await read_records(kafka_bootstrap, dlq, expected=2)
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
    assert reasons == ["exhausted", "malformed"]


async def test_a_refused_event_is_handled_once_and_dead_lettered(
    kafka_bootstrap: str, make_topic, unique: str
) -> None:
    """A handler's `PermanentError` (processing refusing a payment of the wrong amount) is not
    run again on its own before the event is dead-lettered: what the handler counts on the way
    (the mismatch metric) is counted once."""
    topic = await make_topic("refused", partitions=1)
    dlq = dead_letter_topic(topic, "batch")
    await ensure_topics(kafka_bootstrap, [TopicSpec(dlq, 1, None)])
    codes = [dossier_code(n) for n in range(1, 4)]
    for code in codes:  # one dossier per key: the keyed stream hands each its own batch
        event = wrap(submitted(code), "/t").to_kafka()
        await produce(kafka_bootstrap, topic, [(event.value, event.headers)], key=code.encode())

    calls: list[str] = []
    done = asyncio.Event()

    async def handle_one(item: Parsed) -> None:
        calls.append(item.event.dossier_code)
        if len(calls) >= len(codes):
            done.set()
        if item.event.dossier_code == codes[1]:
            raise PermanentError("refused")

    consumer, broker = consumer_for(
        kafka_bootstrap, unique, topic, per_key_in_order(handle_one), kind=KeyedStreamConsumer
    )
    async with broker:  # type: ignore[attr-defined]
        await broker.start()  # type: ignore[attr-defined]
        await consumer.start()
        await asyncio.wait_for(done.wait(), timeout=30)
        [dead] = await read_records(kafka_bootstrap, dlq, expected=1)
        await consumer.stop()

    assert sorted(calls) == codes  # each once, the refused one too
    assert dict(dead.headers)["dlq_reason"] == b"permanent"
    assert dict(dead.headers)["ce_subject"] == codes[1].encode()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_restarted_consumer_resumes_after_the_last_handled_batch(
    kafka_bootstrap: str, make_topic, unique: str, kind: type[BatchConsumer]
) -> None:
    topic = await make_topic("batch-resume", partitions=1)
    first = [wrap(submitted(dossier_code(n)), "/t") for n in (1, 2)]
    await produce(
        kafka_bootstrap, topic, [(e.to_kafka().value, e.to_kafka().headers) for e in first]
    )
    seen: list[str] = []
    got = asyncio.Event()

    async def handle(batch: list[Parsed]) -> None:
        seen.extend(item.event.dossier_code for item in batch)
        if len(seen) >= 2:
            got.set()

    consumer, broker = consumer_for(kafka_bootstrap, unique, topic, handle, kind=kind)
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        await asyncio.wait_for(got.wait(), timeout=30)
        await consumer.stop()

    later = wrap(submitted(dossier_code(3)), "/t")
    await produce(kafka_bootstrap, topic, [(later.to_kafka().value, later.to_kafka().headers)])
    seen.clear()
    got.clear()
    consumer, broker = consumer_for(kafka_bootstrap, unique, topic, handle, kind=kind)
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        async with asyncio.timeout(30):
            while dossier_code(3) not in seen:  # noqa: ASYNC110 (state set by the consumer)
                await asyncio.sleep(0.05)
        await consumer.stop()
    assert seen == [dossier_code(3)]  # the first two were committed: not read again


@pytest.mark.parametrize("kind", KINDS)
async def test_reads_handled_one_by_one_are_committed_together_and_all_by_the_stop(
    kafka_bootstrap: str,
    make_topic,
    unique: str,
    kind: type[BatchConsumer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twenty events sent one after the other, each read and handled alone (a quiet hour's
    traffic): a handful of commits, not one per read; the stop commits the last ones, so a
    restarted consumer reads none of them again."""
    topic = await make_topic("batch-coalesced", partitions=1)
    partition = TopicPartition(topic, 0)
    commits: list[object] = []
    commit = AIOKafkaConsumer.commit

    async def counted_commit(consumer: AIOKafkaConsumer, offsets: object = None) -> None:
        commits.append(offsets)
        await commit(consumer, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counted_commit)
    handled: list[str] = []

    async def handle_one(item: Parsed) -> None:
        handled.append(item.event.dossier_code)

    consumer, broker = consumer_for(
        kafka_bootstrap, unique, topic, per_key_in_order(handle_one), kind=kind, commit_interval=5
    )
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        try:
            for n in range(20):
                message = wrap(submitted(dossier_code(n)), "/t").to_kafka()
                await produce(kafka_bootstrap, topic, [(message.value, message.headers)])
                async with asyncio.timeout(30):
                    while len(handled) <= n:  # noqa: ASYNC110 (state set by the consumer)
                        await asyncio.sleep(0.01)
        finally:
            await consumer.stop()
    assert handled == [dossier_code(n) for n in range(20)]
    assert 1 <= len(commits) <= 3, commits
    assert all(commits)  # explicit offsets, never the bare position
    assert await committed(kafka_bootstrap, f"batch.{unique}", partition) == 20


@pytest.mark.parametrize("linger", [0.0, 1.0])
async def test_a_lingering_stream_handles_a_trickle_of_events_in_few_reads(
    kafka_bootstrap: str,
    make_topic,
    unique: str,
    linger: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten events of ten dossiers sent 50 ms apart: read one by one without a linger; with one
    (a background consumer), the events that came meanwhile are read and handed out together
    (their writes shared), all handled in order and committed."""
    topic = await make_topic("keyed-linger", partitions=1)
    reads: list[int] = []
    hand_out = KeyedStreamConsumer._hand_out

    def counted(consumer: KeyedStreamConsumer, records: list) -> None:
        reads.append(len(records))
        hand_out(consumer, records)

    monkeypatch.setattr(KeyedStreamConsumer, "_hand_out", counted)
    handled: list[str] = []

    async def handle_one(item: Parsed) -> None:
        handled.append(item.event.dossier_code)

    consumer, broker = consumer_for(
        kafka_bootstrap,
        unique,
        topic,
        per_key_in_order(handle_one),
        kind=KeyedStreamConsumer,
        linger=linger,
    )
    warm_up, codes = dossier_code(99), [dossier_code(n) for n in range(10)]
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        try:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                # The first event proves the consumer assigned; the trickle is read after it.
                for n, code in enumerate([warm_up, *codes]):
                    message = wrap(submitted(code), "/t").to_kafka()
                    await producer.send_and_wait(
                        topic, message.value, key=code.encode(), headers=message.headers
                    )
                    async with asyncio.timeout(30):
                        while n == 0 and not handled:  # noqa: ASYNC110 (set by the consumer)
                            await asyncio.sleep(0.01)
                    await asyncio.sleep(0.05)
            finally:
                await producer.stop()
            async with asyncio.timeout(30):
                while len(handled) <= len(codes):  # noqa: ASYNC110 (state set by the consumer)
                    await asyncio.sleep(0.01)
        finally:
            await consumer.stop()
    assert handled == [warm_up, *codes]
    reads = reads[1:]  # the warm-up's own
    assert sum(reads) == len(codes)
    if linger:
        assert len(reads) <= 3, reads
    else:
        assert len(reads) >= 5, reads
    assert await committed(kafka_bootstrap, f"batch.{unique}", TopicPartition(topic, 0)) == 11


async def committed(bootstrap: str, group: str, partition: TopicPartition) -> int | None:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await reader.start()
    try:
        return await reader.committed(partition)
    finally:
        await reader.stop()


async def test_a_slow_dossier_holds_up_only_its_own_later_events_and_the_commit(
    kafka_bootstrap: str, make_topic, unique: str
) -> None:
    topic = await make_topic("keyed", partitions=1)
    partition = TopicPartition(topic, 0)
    slow, others = dossier_code(1), [dossier_code(n) for n in (2, 3, 4)]
    released = asyncio.Event()
    handled: list[str] = []

    async def handle_one(item: Parsed) -> None:
        if item.event.dossier_code == slow and not released.is_set():
            await released.wait()
        handled.append(f"{item.event.dossier_code}/{item.cloud_event.id}")

    def event(code: str) -> tuple[bytes, list]:
        message = wrap(submitted(code), "/t").to_kafka()
        return message.value, message.headers

    first = event(slow)
    await produce(kafka_bootstrap, topic, [first], key=slow.encode())
    for code in others:
        await produce(kafka_bootstrap, topic, [event(code)], key=code.encode())

    consumer, broker = consumer_for(
        kafka_bootstrap, unique, topic, per_key_in_order(handle_one), kind=KeyedStreamConsumer
    )
    group = f"batch.{unique}"
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                while len(handled) < 3:  # noqa: ASYNC110 (state set by the consumer)
                    await asyncio.sleep(0.05)
            assert [h.split("/")[0] for h in handled] == others  # not held up by the first
            # Read after the slow one and on another dossier: handled at once too.
            later = dossier_code(5)
            await produce(kafka_bootstrap, topic, [event(later)], key=later.encode())
            second = event(slow)  # the slow dossier's next event waits for its first
            await produce(kafka_bootstrap, topic, [second], key=slow.encode())
            async with asyncio.timeout(30):
                while not any(h.startswith(later) for h in handled):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            assert not any(h.startswith(slow) for h in handled)
            assert await committed(kafka_bootstrap, group, partition) in (None, 0)

            released.set()
            async with asyncio.timeout(30):
                while await committed(kafka_bootstrap, group, partition) != 6:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        finally:
            await consumer.stop()
    mine = [h for h in handled if h.startswith(slow)]
    assert len(mine) == 2 and handled.index(mine[0]) < handled.index(mine[1])


async def test_a_stop_with_a_dossier_in_hand_leaves_it_to_be_read_again(
    kafka_bootstrap: str, make_topic, unique: str
) -> None:
    topic = await make_topic("keyed-stop", partitions=1)
    slow, other = dossier_code(1), dossier_code(2)
    stuck = asyncio.Event()
    handled: list[str] = []
    first_process = [True]

    async def handle_one(item: Parsed) -> None:
        if item.event.dossier_code == slow and first_process[0]:
            stuck.set()
            await asyncio.sleep(3600)  # never done in this process
        handled.append(item.event.dossier_code)

    for code in (slow, other):
        message = wrap(submitted(code), "/t").to_kafka()
        await produce(kafka_bootstrap, topic, [(message.value, message.headers)], key=code.encode())

    consumer, broker = consumer_for(
        kafka_bootstrap, unique, topic, per_key_in_order(handle_one), kind=KeyedStreamConsumer
    )
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        await asyncio.wait_for(stuck.wait(), timeout=30)
        async with asyncio.timeout(30):
            while other not in handled:  # noqa: ASYNC110 (state set by the consumer)
                await asyncio.sleep(0.05)
        await consumer.stop(grace=0.5)

    handled.clear()
    first_process[0] = False
    consumer, broker = consumer_for(
        kafka_bootstrap, unique, topic, per_key_in_order(handle_one), kind=KeyedStreamConsumer
    )
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        async with asyncio.timeout(30):
            while slow not in handled:  # noqa: ASYNC110 (state set by the consumer)
                await asyncio.sleep(0.05)
        await consumer.stop()
    # Read again from the oldest record not done: the slow one, and the other after it (its
    # handler is idempotent in real use).
    assert handled[0] == slow

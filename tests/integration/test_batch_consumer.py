"""Batch consumption against the real broker: a poisoned record in a batch is dead-lettered and
the rest pass; offsets are committed only after the batch was handled."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierSubmitted
from shared.contracts.topics import TopicSpec, dead_letter_topic
from shared.runtime.batch_consumer import BatchConsumer, Parsed
from shared.runtime.consumer import RetryPolicy
from shared.runtime.kafka import create_broker, ensure_topics
from shared.runtime.settings import ServiceSettings
from tests.factories import dossier_code, submitted
from tests.kafka_helpers import read_records


async def produce(bootstrap: str, topic: str, values: list[tuple[bytes, list]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in values:
            await producer.send_and_wait(topic, value, key=b"k", headers=headers)
    finally:
        await producer.stop()


def consumer_for(
    kafka_bootstrap: str, unique: str, topic: str, handle, group: str = "batch"
) -> tuple[BatchConsumer, object]:
    settings = ServiceSettings(kafka_bootstrap=kafka_bootstrap, topic_suffix=f".{unique}")
    broker = create_broker(kafka_bootstrap, "batch-test")
    consumer = BatchConsumer(
        settings,
        broker,
        group=group,
        routes={topic: DossierSubmitted},
        handle=handle,
        policy=RetryPolicy(max_attempts=2, base_delay=0.01),
    )
    return consumer, broker


async def test_a_poisoned_record_is_dead_lettered_and_the_batch_passes(
    kafka_bootstrap: str, make_topic, unique: str
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

    consumer, broker = consumer_for(kafka_bootstrap, unique, topic, handle)
    async with broker:  # type: ignore[attr-defined]
        await broker.start()  # type: ignore[attr-defined]
        await consumer.start()
        await asyncio.wait_for(all_seen.wait(), timeout=30)
        await consumer.stop()

    assert sorted(set(handled)) == [dossier_code(n) for n in (1, 2, 3, 5)]
    dead = await read_records(kafka_bootstrap, dlq, expected=2)
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
    assert reasons == ["exhausted", "malformed"]


async def test_a_restarted_consumer_resumes_after_the_last_handled_batch(
    kafka_bootstrap: str, make_topic, unique: str
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

    consumer, broker = consumer_for(kafka_bootstrap, unique, topic, handle)
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        await asyncio.wait_for(got.wait(), timeout=30)
        await consumer.stop()

    later = wrap(submitted(dossier_code(3)), "/t")
    await produce(kafka_bootstrap, topic, [(later.to_kafka().value, later.to_kafka().headers)])
    seen.clear()
    got.clear()
    consumer, broker = consumer_for(kafka_bootstrap, unique, topic, handle)
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()
        async with asyncio.timeout(30):
            while dossier_code(3) not in seen:  # noqa: ASYNC110 (state set by the consumer)
                await asyncio.sleep(0.05)
        await consumer.stop()
    assert seen == [dossier_code(3)]  # the first two were committed: not read again

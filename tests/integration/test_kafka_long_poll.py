"""A consumer's long poll against the real broker (`shared.runtime.kafka.long_poll_when_idle`): with
nothing in hand it waits long, so an idle consumer sends few fetches, and a record that arrives
still ends the wait at once."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.protocol.fetch import FetchRequest

from shared.runtime.kafka import long_poll_when_idle
from shared.runtime.settings import ServiceSettings

BUSY_MS, IDLE_MS = 100, 2000


def counting_fetches(consumer: AIOKafkaConsumer) -> list[float]:
    """The moments the consumer sent a fetch (its client's `send`, wrapped)."""
    sent: list[float] = []
    client: Any = consumer._client
    send = client.send

    async def counted(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, FetchRequest):
            sent.append(time.monotonic())
        return await send(node_id, request, *args, **kwargs)

    client.send = counted
    return sent


async def started(kafka_bootstrap: str, topic: str, hook: bool) -> AIOKafkaConsumer:
    settings = ServiceSettings(
        kafka_bootstrap=kafka_bootstrap,
        consumer_fetch_max_wait_ms=BUSY_MS,
        consumer_idle_fetch_max_wait_ms=IDLE_MS,
    )
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, fetch_max_wait_ms=BUSY_MS, group_id=None
    )
    await consumer.start()
    if hook:
        long_poll_when_idle(consumer, settings)
    return consumer


@pytest.mark.parametrize("hook", [True, False], ids=["idle-long-poll", "fixed-long-poll"])
async def test_an_idle_consumer_sends_few_fetches_and_a_record_still_ends_its_wait(
    kafka_bootstrap: str, make_topic, hook: bool, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await make_topic("long-poll", partitions=3)
    with caplog.at_level(logging.WARNING, logger="shared.runtime.kafka"):
        consumer = await started(kafka_bootstrap, topic, hook)
    assert "fetcher changed" not in caplog.text  # this aiokafka has what the hook needs
    sent = counting_fetches(consumer)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        assert await consumer.getmany(timeout_ms=3000) == {}  # idle for 3 s
        idle_fetches = len(sent)
        await asyncio.sleep(0.5)  # well inside a long fetch in flight
        produced = time.monotonic()
        await producer.send_and_wait(topic, b"hello", key=b"k")
        records: list[Any] = []
        async with asyncio.timeout(IDLE_MS / 1000 * 3):
            while not records:
                batches = await consumer.getmany(timeout_ms=100)
                records = [r for part in batches.values() for r in part]
        waited = time.monotonic() - produced
    finally:
        await producer.stop()
        await consumer.stop()

    assert [r.value for r in records] == [b"hello"]
    if hook:
        assert idle_fetches <= 4  # one per 2 s
        assert waited < IDLE_MS / 1000 / 2  # the record ended the long fetch in flight
    else:
        assert idle_fetches >= 15  # one per 100 ms: what the hook saves

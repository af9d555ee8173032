"""Consumers started before their topics exist consume them as soon as they are created.

A group member subscribed to a topic the broker does not list yet gets none of its partitions,
and aiokafka looks again only at its periodic metadata refresh (5 minutes): the end-to-end bench
once saw notification and reporting consume nothing for that long after a fresh broker listed
their new topics late. These tests would wait those 5 minutes; they allow 30 seconds."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierSubmitted
from shared.contracts.topics import TopicSpec
from shared.runtime.batch_consumer import Parsed
from shared.runtime.kafka import ensure_topics
from shared.runtime.service import build_service_app, subscribe_dossier_events
from shared.runtime.settings import ServiceSettings
from tests.factories import dossier_code, submitted
from tests.integration.test_batch_consumer import consumer_for, produce
from tests.service_harness import QUICK_CONSUMERS


async def test_a_batch_consumer_reads_a_topic_created_after_it_started(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"test.late-batch.{unique}"
    seen: list[str] = []
    got = asyncio.Event()

    async def handle(batch: list[Parsed]) -> None:
        seen.extend(item.event.dossier_code for item in batch)
        got.set()

    consumer, broker = consumer_for(kafka_bootstrap, unique, topic, handle)
    async with broker:  # type: ignore[attr-defined]
        await consumer.start()  # returns at once; it subscribes when the topic is listed
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3, None)])
        event = wrap(submitted(dossier_code(1)), "/t").to_kafka()
        await produce(kafka_bootstrap, topic, [(event.value, event.headers)])
        await asyncio.wait_for(got.wait(), timeout=30)
        await consumer.stop()
    assert seen == [dossier_code(1)]


async def test_a_service_waits_for_the_topics_of_its_subscribers_before_consuming(
    kafka_bootstrap: str, mongo_url: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServiceSettings(
        kafka_bootstrap=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"late_{unique}",
        topic_suffix=f".late{unique}",
        service_name="late-topics-test",
        **QUICK_CONSUMERS,
    )
    topic = settings.topic(DossierSubmitted.topic)
    seen: list[str] = []
    got = asyncio.Event()

    async def on_submitted(event: DossierSubmitted, cloud_event: object) -> None:
        seen.append(event.dossier_code)
        got.set()

    app = build_service_app(
        settings,
        title="late topics",
        register=lambda context: subscribe_dossier_events(
            context, group="late", handlers={DossierSubmitted: on_submitted}
        ),
    )
    lifespan = app.router.lifespan_context(app)
    starting = asyncio.create_task(lifespan.__aenter__())
    try:
        # The operator is told what the service waits for; then the topic comes.
        async with asyncio.timeout(30):
            while not any(topic in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert not starting.done()
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3, None)])
        await asyncio.wait_for(starting, timeout=30)
        event = wrap(submitted(dossier_code(2)), "/t").to_kafka()
        await produce(kafka_bootstrap, topic, [(event.value, event.headers)])
        await asyncio.wait_for(got.wait(), timeout=30)
    finally:
        if starting.done() and not starting.exception():
            await lifespan.__aexit__(None, None, None)
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
    assert seen == [dossier_code(2)]

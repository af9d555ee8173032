"""The agencies' sample stream consumer (examples/agencies/stream_consumer.py) against the real
broker: public CloudEvents as the platform publishes them, read once each, in order per dossier,
committed only after processing, replayed from a moment; and its command line."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from examples.agencies.stream_consumer import Config, DossierStatus, consume
from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import DossierState, PublicDossierStatus
from tests.conftest import TopicFactory
from tests.factories import dossier_code

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "/dvc/notification/public-stream"
STEPS = [
    ("submit", DossierState.SUBMITTED),
    ("receive", DossierState.RECEIVED),
    ("start_processing", DossierState.IN_PROCESSING),
]


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


def step(code: str, action: str, state: DossierState) -> CloudEvent:
    return wrap(
        PublicDossierStatus(
            dossier_code=code,
            occurred_at=datetime.now(UTC),
            procedure_code="1.004473",
            unit_code="G12",
            state=state,
            action=action,
        ),
        SOURCE,
    )


async def publish(
    producer: AIOKafkaProducer, topic: str, event: CloudEvent, at: datetime | None = None
) -> CloudEvent:
    record = event.to_kafka()
    timestamp_ms = int(at.timestamp() * 1000) if at else None
    await producer.send_and_wait(
        topic, record.value, key=record.key, headers=record.headers, timestamp_ms=timestamp_ms
    )
    return event


def local(bootstrap: str, topic: str, group: str) -> Config:
    return Config(bootstrap=bootstrap, group=group, security_protocol="PLAINTEXT", topic=topic)


async def read(config: Config, count: int, **options: object) -> list[DossierStatus]:
    events: list[DossierStatus] = []

    async def handle(event: DossierStatus) -> None:
        events.append(event)

    async with asyncio.timeout(60):
        assert await consume(config, handle, stop_after=count, poll_ms=200, **options) == count
    return events


async def test_the_sample_reads_each_public_event_once_in_order_per_dossier(
    kafka_bootstrap: str, make_topic: TopicFactory, producer: AIOKafkaProducer, unique: str
) -> None:
    topic = await make_topic("public", partitions=3)
    codes = [dossier_code(n) for n in (1, 2, 3)]
    events = []
    for action, state in STEPS:
        for code in codes:
            events.append(await publish(producer, topic, step(code, action, state)))
        if action == "submit":  # a producer retry: the first event once more, same ce_id
            await publish(producer, topic, events[0])
    await producer.send_and_wait(topic, b"not a cloud event", key=codes[1].encode())
    await producer.send_and_wait(  # a later event type on the topic: skipped
        topic,
        b"{}",
        key=codes[2].encode(),
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"future-1"),
            ("ce_source", SOURCE.encode()),
            ("ce_type", b"vn.gov.most.dvc.public.something-new.v1"),
        ],
    )
    # The last events of each dossier come after the duplicate and the skipped records on
    # their partitions: once they are handled, those were read (and dropped) before.
    events.append(
        await publish(producer, topic, step(codes[1], "assign", DossierState.IN_PROCESSING))
    )
    events.append(
        await publish(producer, topic, step(codes[2], "assign", DossierState.IN_PROCESSING))
    )

    got = await read(local(kafka_bootstrap, topic, f"portal-{unique}"), len(events))

    assert sorted(e.id for e in got) == sorted(e.id for e in events)  # none twice, none lost
    by_dossier: dict[str, list[str]] = {}
    for event in got:
        by_dossier.setdefault(event.dossier_code, []).append(event.action)
    assert by_dossier == {
        codes[0]: ["submit", "receive", "start_processing"],
        codes[1]: ["submit", "receive", "start_processing", "assign"],
        codes[2]: ["submit", "receive", "start_processing", "assign"],
    }
    first = next(e for e in got if e.id == events[0].id)
    assert (first.unit_code, first.procedure_code, first.state, first.source) == (
        "G12",
        "1.004473",
        1,
        SOURCE,
    )


async def test_offsets_are_committed_after_processing_and_a_replay_rewinds_by_time(
    kafka_bootstrap: str, make_topic: TopicFactory, producer: AIOKafkaProducer, unique: str
) -> None:
    topic = await make_topic("public", partitions=1)
    config = local(kafka_bootstrap, topic, f"portal-{unique}")
    code = dossier_code(4)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    old = [
        await publish(producer, topic, step(code, action, state), at=an_hour_ago)
        for action, state in STEPS[:2]
    ]
    assert [e.id for e in await read(config, 2)] == [e.id for e in old]

    new = [
        await publish(producer, topic, step(code, "start_processing", DossierState.IN_PROCESSING))
    ]
    assert [e.id for e in await read(config, 1)] == [new[0].id]  # the old ones were committed

    # A handler failure stops the consumer; what was processed before it stays committed.
    new += [
        await publish(
            producer, topic, step(code, "request_supplement", DossierState.SUPPLEMENT_REQUESTED)
        ),
        await publish(
            producer, topic, step(code, "supplement_received", DossierState.IN_PROCESSING)
        ),
    ]
    handled: list[str] = []

    async def fail_on_supplement_received(event: DossierStatus) -> None:
        if event.action == "supplement_received":
            raise RuntimeError("the agency's database is down")
        handled.append(event.id)

    with pytest.raises(RuntimeError, match="database is down"):
        async with asyncio.timeout(60):
            await consume(config, fail_on_supplement_received, poll_ms=200)
    assert handled == [new[1].id]
    assert [e.id for e in await read(config, 1)] == [new[2].id]  # read again after the failure

    # Replay: everything published in the last half hour, although this group committed it all.
    since = datetime.now(UTC) - timedelta(minutes=30)
    replayed = await read(config, len(new), from_timestamp=since)
    assert [e.id for e in replayed] == [e.id for e in new]


async def test_the_command_line_prints_one_line_per_event(
    kafka_bootstrap: str, make_topic: TopicFactory, producer: AIOKafkaProducer, unique: str
) -> None:
    topic = await make_topic("public", partitions=1)
    code = dossier_code(5)
    for action, state in STEPS[:2]:
        await publish(producer, topic, step(code, action, state))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KAFKA_GROUP": f"portal-cli-{unique}",
        "KAFKA_TOPIC": topic,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "agencies" / "stream_consumer.py"),
        "--max-events",
        "2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 2, out
    assert f"{code} unit=G12 procedure=1.004473 action=submit state=1" in lines[0]
    assert f"{code} unit=G12 procedure=1.004473 action=receive state=2 Đã tiếp nhận" in lines[1]

"""The idempotent consumer and the dead-letter path, against the real broker and database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from shared.contracts.cloudevents import CloudEvent, unwrap, wrap
from shared.contracts.events import DossierSubmitted
from shared.runtime.consumer import RetryPolicy, Route, subscribe
from shared.runtime.failures import OutageWatch
from shared.runtime.idempotency import apply_once
from shared.runtime.kafka import create_broker, publish_cloud_event, publish_cloud_events
from tests.factories import dossier_code, submitted
from tests.kafka_helpers import read_records


def subscribed_broker(
    kafka_bootstrap: str,
    topic: str,
    handle: Any,
    *,
    group: str,
    dead_letters: str | None = None,
    policy: RetryPolicy | None = None,
    graceful_timeout: float = 15.0,
    **options: Any,
) -> KafkaBroker:
    """A broker whose `group` reads `topic` (submitted events) with `handle`; failed events go to
    `dead_letters` (default: the topic's name + ".dlq"). `options`: `subscribe`'s others."""
    broker = create_broker(kafka_bootstrap, "test-consumer", graceful_timeout=graceful_timeout)
    subscribe(
        broker,
        group=group,
        routes={topic: Route(DossierSubmitted, handle)},
        dead_letter_topic=lambda t: dead_letters or t + ".dlq",
        policy=policy or RetryPolicy(),
        **options,
    )
    return broker


async def test_the_same_event_applied_twice_has_one_effect(mongo_db) -> None:
    cases = mongo_db["cases"]
    code = dossier_code()

    async def apply(event_id: str) -> bool:
        return await apply_once(
            cases,
            {"_id": code},
            event_id,
            {"$inc": {"supplements": 1}, "$setOnInsert": {"unit": "G12"}},
        )

    assert await apply("event-1") is True
    assert await apply("event-1") is False  # redelivered
    assert await apply("event-2") is True
    assert await asyncio.gather(apply("event-3"), apply("event-3")) in (
        [True, False],
        [False, True],
    )

    document = await cases.find_one({"_id": code})
    assert document["supplements"] == 3
    assert document["unit"] == "G12"
    assert document["applied_event_ids"] == ["event-1", "event-2", "event-3"]


async def test_a_redelivered_first_event_does_not_create_a_twin(mongo_db) -> None:
    """The first event of a document upserts it; its redelivery must not insert another."""
    cases = mongo_db["cases"]
    results = await asyncio.gather(
        *(apply_once(cases, {"_id": "X"}, "e1", {"$inc": {"n": 1}}) for _ in range(5))
    )
    assert results.count(True) == 1
    assert await cases.count_documents({}) == 1
    assert (await cases.find_one({"_id": "X"}))["n"] == 1


async def test_a_poison_message_is_dead_lettered_and_valid_ones_keep_flowing(
    kafka_bootstrap: str, make_topic, mongo_db, unique: str
) -> None:
    topic = await make_topic("submitted", partitions=1)
    dead_letters = await make_topic("submitted-dlq", partitions=1)
    group = f"group-{unique}"
    handled = mongo_db["handled"]
    done = asyncio.Event()

    async def handle(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        if event.dossier_code == dossier_code(2):
            raise RuntimeError("downstream rejects this dossier")
        applied = await apply_once(
            handled, {"_id": event.dossier_code}, cloud_event.id, {"$inc": {"n": 1}}
        )
        if applied and await handled.count_documents({}) == 2:
            done.set()

    broker = subscribed_broker(
        kafka_bootstrap,
        topic,
        handle,
        group=group,
        dead_letters=dead_letters,
        policy=RetryPolicy(max_attempts=3, base_delay=0.01),
    )
    valid_1, failing, valid_3 = (wrap(submitted(dossier_code(n)), "/t") for n in (1, 2, 3))
    async with broker:
        await broker.start()
        await publish_cloud_event(broker, topic, valid_1)
        await broker.publish(b'{"not": "a cloud event"}', topic, key=b"poison")  # no ce_ headers
        await publish_cloud_event(broker, topic, failing)
        await publish_cloud_event(broker, topic, valid_3)
        await publish_cloud_event(broker, topic, valid_1)  # a duplicate, as after a crash
        await asyncio.wait_for(done.wait(), timeout=30)

    records = await read_records(kafka_bootstrap, dead_letters, expected=2)
    by_reason = {dict(r.headers)["dlq_reason"].decode(): r for r in records}
    assert set(by_reason) == {"malformed", "exhausted"}
    assert by_reason["malformed"].value == b'{"not": "a cloud event"}'
    assert b"missing CloudEvents headers" in dict(by_reason["malformed"].headers)["dlq_error"]
    exhausted = by_reason["exhausted"]
    assert unwrap(
        CloudEvent.from_kafka(exhausted.value, exhausted.headers)
    ).dossier_code == dossier_code(2)
    assert dict(exhausted.headers)["dlq_error"] == b"RuntimeError: downstream rejects this dossier"
    assert dict(exhausted.headers)["dlq_attempts"] == b"3"
    assert {d["_id"]: d["n"] async for d in handled.find()} == {
        dossier_code(1): 1,
        dossier_code(3): 1,
    }


@pytest.mark.parametrize("commit_interval", [0.0, 30.0], ids=["each", "coalesced"])
async def test_offsets_are_committed_only_after_the_handler_succeeded(
    kafka_bootstrap: str, make_topic, unique: str, commit_interval: float
) -> None:
    """A consumer that stops mid-way resumes from the first unfinished message: also when its
    commits are coalesced (the pending one is committed as the consumer stops)."""
    topic = await make_topic("resume", partitions=1)
    group = f"group-{unique}"
    seen: list[str] = []
    gate = asyncio.Event()

    async def handle(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        seen.append(event.dossier_code)
        if len(seen) == 2:
            gate.set()
            await asyncio.sleep(3600)  # "crash" while handling the second message

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for n in (1, 2, 3):
        record = wrap(submitted(dossier_code(n)), "/t").to_kafka()
        await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    await producer.stop()

    broker = subscribed_broker(
        kafka_bootstrap,
        topic,
        handle,
        group=group,
        graceful_timeout=0.5,
        commit_interval=commit_interval,
    )
    await broker.start()
    await asyncio.wait_for(gate.wait(), timeout=30)
    # Stop while the second handler is still running, as a crash or a deploy would.
    await broker.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        first = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert first.key == dossier_code(2).encode()
    assert seen[:2] == [dossier_code(1), dossier_code(2)]


async def test_handled_events_are_committed_together_not_one_by_one(
    kafka_bootstrap: str, make_topic, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 events cost a handful of commits, and every handled one ends up committed."""
    topic = await make_topic("coalesced", partitions=2)
    group = f"group-{unique}"
    commits: list[dict[TopicPartition, int]] = []
    commit = AIOKafkaConsumer.commit

    async def counted_commit(consumer: AIOKafkaConsumer, offsets: object = None) -> None:
        commits.append(dict(offsets or {}))  # type: ignore[call-overload]
        await commit(consumer, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counted_commit)
    handled: list[str] = []
    all_handled = asyncio.Event()

    async def handle(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        handled.append(event.dossier_code)
        if len(handled) == 60:
            all_handled.set()

    broker = subscribed_broker(kafka_bootstrap, topic, handle, group=group, commit_interval=0.2)
    async with broker:
        await broker.start()
        await publish_cloud_events(
            broker, topic, [wrap(submitted(dossier_code(n)), "/t") for n in range(60)]
        )
        await asyncio.wait_for(all_handled.wait(), timeout=30)
        committed = await _committed(kafka_bootstrap, topic, group, partitions=2)
        while sum(committed.values()) < 60:  # the last commit is at most 0.2 s behind
            await asyncio.sleep(0.05)
            committed = await _committed(kafka_bootstrap, topic, group, partitions=2)
    assert sorted(handled) == sorted(dossier_code(n) for n in range(60))
    assert len(commits) <= 10, commits
    assert all(offsets for offsets in commits)  # explicit offsets, never the bare position


async def _committed(
    bootstrap: str, topic: str, group: str, partitions: int
) -> dict[TopicPartition, int]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp: await reader.committed(tp) or 0 for tp in tps}
    finally:
        await reader.stop()


async def test_a_database_outage_longer_than_the_retries_is_waited_out_in_order(
    kafka_bootstrap: str, make_topic, mongo_db, unique: str
) -> None:
    """The database is unreachable for longer than all bounded retries would last: the events
    wait (the service not ready meanwhile), none is dead-lettered, none overtakes another."""
    topic = await make_topic("outage", partitions=1)
    dead_letters = await make_topic("outage-dlq", partitions=1)
    away = AsyncMongoClient("mongodb://127.0.0.1:9/", serverSelectionTimeoutMS=300)
    database = {"current": away[mongo_db.name]}  # the outage ends when this is swapped back
    watch = OutageWatch()
    applied: list[str] = []
    all_applied = asyncio.Event()

    first_failure = asyncio.Event()

    async def handle(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        try:
            await database["current"]["steps"].insert_one({"_id": cloud_event.id})
        except Exception:  # a real ServerSelectionTimeoutError while the database is away
            first_failure.set()
            raise
        applied.append(cloud_event.id)
        if len(applied) == 3:
            all_applied.set()

    broker = subscribed_broker(
        kafka_bootstrap,
        topic,
        handle,
        group=f"group-{unique}",
        dead_letters=dead_letters,
        policy=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1, outage_max_delay=0.5),
        watch=watch,
    )
    events = [wrap(submitted(dossier_code(n)), "/t") for n in (1, 1, 2)]
    async with broker:
        await broker.start()
        for event in events:
            await publish_cloud_event(broker, topic, event)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(first_failure.wait(), timeout=30)
        assert watch.waiting == [f"group-{unique}"]  # readiness reports it
        await asyncio.sleep(4)  # longer than 3 attempts of bounded retries
        assert applied == [] and watch.waiting
        database["current"] = mongo_db  # the database is back
        await asyncio.wait_for(all_applied.wait(), timeout=30)
        assert loop.time() - started > 4
    await away.close()

    assert applied == [event.id for event in events]  # in order, each once
    assert watch.healthy()
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await reader.start()
    try:
        partition = TopicPartition(dead_letters, 0)
        assert (await reader.end_offsets([partition]))[partition] == 0  # nothing dead-lettered
    finally:
        await reader.stop()

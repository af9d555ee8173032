"""Dead-letter redrive (`python -m shared.tools.redrive`) against the real broker: records a real
consumer
dead-lettered are listed, shown with personal data masked, and redriven to their topic once."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import DossierSubmitted
from shared.contracts.topics import (
    DOSSIER_SUBMITTED_TOPIC,
    PROCESSING_GROUP,
    TopicSpec,
    dead_letter_topic,
)
from shared.runtime.consumer import PermanentError, RetryPolicy, Route, subscribe
from shared.runtime.kafka import create_broker, ensure_topics, publish_cloud_event
from shared.tools.redrive import (
    REDRIVEN_FROM_HEADER,
    DeadLetter,
    Progress,
    RedriveSettings,
    masked_data,
    run,
    split_dead_letter_topic,
)
from tests.factories import dossier_code, submitted
from tests.kafka_helpers import read_records, read_until

PERSONAL = ("Nguyễn Văn A", "001203004567", "a@example.vn", "0912345678")


async def command(settings: RedriveSettings, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = await run(argv, settings, out=out)
    return status, out.getvalue()


async def end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


class Stack:
    """A submitted topic and its processing dead-letter topic, under a suffix of the test's own."""

    def __init__(self, bootstrap: str, unique: str) -> None:
        self.bootstrap = bootstrap
        self.suffix = f".{unique}"
        self.topic = DOSSIER_SUBMITTED_TOPIC + self.suffix
        self.dead_letters = dead_letter_topic(self.topic, PROCESSING_GROUP)
        self.settings = RedriveSettings(kafka_bootstrap=bootstrap, topic_suffix=self.suffix)


@pytest.fixture
async def stack(kafka_bootstrap: str, unique: str) -> AsyncIterator[Stack]:
    stack = Stack(kafka_bootstrap, unique)
    await ensure_topics(
        kafka_bootstrap,
        [TopicSpec(stack.topic, 1, None), TopicSpec(stack.dead_letters, 1, None)],
    )
    yield stack


async def test_dead_letters_are_listed_shown_masked_and_redriven_once(stack: Stack) -> None:
    fixed = False
    handled: list[str] = []
    both_handled = asyncio.Event()

    async def handle(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        if not fixed:
            raise PermanentError("unknown procedure")
        handled.append(cloud_event.id)
        if len(handled) == 2:
            both_handled.set()

    broker = create_broker(stack.bootstrap, "test-redrive")
    subscribe(
        broker,
        group=PROCESSING_GROUP + stack.suffix,
        routes={stack.topic: Route(DossierSubmitted, handle)},
        policy=RetryPolicy(max_attempts=2, base_delay=0.01),
        dead_letter_topic=lambda topic: dead_letter_topic(topic, PROCESSING_GROUP),
        fetch_max_wait_ms=200,
    )
    events = [wrap(submitted(dossier_code(n)), "/intake") for n in (1, 2)]
    async with broker:
        await broker.start()
        for event in events:
            await publish_cloud_event(broker, stack.topic, event)
        await read_records(stack.bootstrap, stack.dead_letters, expected=2)

        status, listed = await command(stack.settings, "list")
        assert status == 0
        [_, row] = listed.splitlines()
        assert row.split() == [stack.dead_letters, "2", "0", "2", "permanent=2"], listed

        status, shown = await command(stack.settings, "show", stack.dead_letters)
        assert status == 0
        assert not any(value in shown for value in PERSONAL), shown
        records = [json.loads(line) for line in shown.splitlines()]
        assert [r["offset"] for r in records] == [0, 1]
        for record, event, original_offset in zip(records, events, (0, 1), strict=True):
            assert record["reason"] == "permanent"
            assert record["error"] == "PermanentError: unknown procedure"
            assert record["original"] == {
                "topic": stack.topic,
                "partition": 0,
                "offset": original_offset,
            }
            assert record["dossier_code"] == event.subject
            assert record["event_type"] == DossierSubmitted.event_type
            assert record["event_id"] == event.id
            assert record["redriven"] is False
            assert record["data"]["applicant"] == record["data"]["contact"] == "[masked]"
            assert record["data"]["procedure_code"] == "1.004473"

        status, dry = await command(
            stack.settings, "redrive", stack.dead_letters, "--all", "--dry-run"
        )
        assert status == 0 and dry.count("would redrive") == 2
        await asyncio.sleep(1)
        assert await end_offset(stack.bootstrap, stack.topic) == 2  # nothing published

        fixed = True  # the fault is repaired: now the redrive
        status, redriven = await command(stack.settings, "redrive", stack.dead_letters, "--all")
        assert status == 0 and redriven.count("redriven\t") == 2, redriven
        await asyncio.wait_for(both_handled.wait(), timeout=30)

        status, again = await command(stack.settings, "redrive", stack.dead_letters, "--all")
        assert status == 0 and again == ""
        await asyncio.sleep(2)  # time enough for a duplicate to reach the consumer

    assert sorted(handled) == sorted(event.id for event in events)
    records = await read_records(stack.bootstrap, stack.topic, expected=4)
    await asyncio.sleep(0.5)
    assert await end_offset(stack.bootstrap, stack.topic) == 4  # each redriven exactly once
    for original, copy, offset in zip(records[:2], records[2:], (0, 1), strict=True):
        assert (copy.key, copy.value) == (original.key, original.value)
        assert list(copy.headers) == [
            *original.headers,
            (REDRIVEN_FROM_HEADER, f"{stack.dead_letters}:0:{offset}".encode()),
        ]
    status, listed = await command(stack.settings, "list")
    assert listed.splitlines()[1].split() == [stack.dead_letters, "2", "2", "0", "-"]


async def test_single_offsets_are_redriven_once_and_all_takes_the_rest(stack: Stack) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        for n in range(3):  # as shared.runtime.consumer writes them
            record = wrap(submitted(dossier_code(n)), "/intake").to_kafka()
            headers = [
                *record.headers,
                ("dlq_reason", b"exhausted"),
                ("dlq_error", b"RuntimeError: boom"),
                ("dlq_original_topic", stack.topic.encode()),
                ("dlq_original_partition", b"0"),
                ("dlq_original_offset", str(n).encode()),
            ]
            await producer.send_and_wait(
                stack.dead_letters, record.value, key=record.key, headers=headers
            )
    finally:
        await producer.stop()

    status, out = await command(stack.settings, "redrive", stack.dead_letters, "--offset", "1")
    assert status == 0 and out.startswith(f"redriven\t{stack.dead_letters}:0:1\t"), out
    status, out = await command(
        stack.settings, "redrive", stack.dead_letters, "--offset", "1", "--offset", "7"
    )
    assert status == 1  # 7 does not exist
    [already, missing] = out.splitlines()
    assert already.startswith(f"already redriven\t{stack.dead_letters}:0:1\t{dossier_code(1)}\t")
    assert already.endswith("\texhausted")
    assert missing == f"not found\t{stack.dead_letters}:7"
    status, out = await command(stack.settings, "show", stack.dead_letters, "--waiting")
    assert [json.loads(line)["offset"] for line in out.splitlines()] == [0, 2]

    status, out = await command(stack.settings, "redrive", stack.dead_letters, "--all")
    assert [line.split("\t")[1] for line in out.splitlines()] == [
        f"{stack.dead_letters}:0:0",
        f"{stack.dead_letters}:0:2",
    ]
    status, out = await command(stack.settings, "redrive", stack.dead_letters, "--all")
    assert (status, out) == (0, "")

    copies = await read_until(stack.bootstrap, stack.topic, lambda records: len(records) >= 3)
    await asyncio.sleep(0.5)
    assert await end_offset(stack.bootstrap, stack.topic) == 3
    assert [dict(c.headers)[REDRIVEN_FROM_HEADER].decode()[-1] for c in copies] == ["1", "0", "2"]
    names = {name for copy in copies for name, _ in copy.headers}
    assert {name for name in names if name.startswith("dlq_")} == {REDRIVEN_FROM_HEADER}


async def test_an_unknown_or_ordinary_topic_is_refused(stack: Stack) -> None:
    status, _ = await command(stack.settings, "show", stack.topic)
    assert status == 1
    status, _ = await command(stack.settings, "redrive", stack.topic + ".x.dlq", "--all")
    assert status == 1


def test_progress_moves_over_every_offset_redriven_and_keeps_the_others_in_metadata() -> None:
    progress = Progress().with_redriven([3, 4, 6])
    assert progress == Progress(0, frozenset({3, 4, 6}))
    assert progress.metadata() == "3-4,6"
    assert Progress.committed(0, "3-4,6") == progress
    assert not progress.covers(0) and progress.covers(4) and not progress.covers(5)
    progress = progress.with_redriven([0, 1, 2])
    assert progress == Progress(5, frozenset({6}))
    assert progress.with_redriven([5]) == Progress(7)
    assert Progress.committed(-1, "") == Progress()
    assert Progress(2).with_redriven([], log_start=10) == Progress(10)


def test_the_data_shown_masks_personal_fields_and_values() -> None:
    data = submitted().model_dump_json().encode()
    masked = masked_data(data)
    assert masked["applicant"] == masked["contact"] == "[masked]"
    assert masked_data(b"call 0912345678 or a@example.vn") == "call [number] or [email]"
    assert masked_data(json.dumps({"x": {"note": "hi"}, "y": ["a@b.vn"]}).encode()) == {
        "x": {"note": "[masked]"},
        "y": ["[email]"],
    }


def test_redrive_headers_drop_the_dead_letter_ones_and_name_the_source() -> None:
    letter = DeadLetter(
        topic="dvc.dossier.paid.v1.processing.dlq",
        partition=0,
        offset=5,
        key=b"k",
        value=b"{}",
        headers=(("ce_id", b"1"), ("dlq_reason", b"permanent"), (REDRIVEN_FROM_HEADER, b"old")),
    )
    assert letter.redrive_headers() == [
        ("ce_id", b"1"),
        (REDRIVEN_FROM_HEADER, b"dvc.dossier.paid.v1.processing.dlq:0:5"),
    ]
    assert letter.original_topic == "dvc.dossier.paid.v1"
    assert split_dead_letter_topic(letter.topic) == ("dvc.dossier.paid.v1", "processing")

"""Public-stream projection throughput and signed webhook deliveries per second (issue 8).

Run against the run-profile infrastructure (not the test profile, which others' tests share):
    .venv/bin/python -m devstack up
    .venv/bin/python bench/bench_agencies.py [--events 20000] [--hook-events 5000]
        [--subscriptions 1] [--workers 16]

Every run uses its own topic suffix, consumer groups and database; the database and the topics
are deleted at the end. Phases, each printed with the CPU each process used meanwhile (the
machine has 2 cores; Kafka, FerretDB, the receiver and this process share them):
1. Projection: N internal events (DossierSubmitted / DossierProcessed, distinct dossiers) are
   produced first, then `PublicStream.publish_batch` runs under a `BatchConsumer` of its own group
   (as `services.notification.main` wires it); the clock runs until N public records are on
   the public topic. Then events are produced at a steady rate to measure the latency from a
   source record to its public record.
2. Baselines of the projection: CPU per record of parsing and projecting, and the publish rate of
   the same records through the service's broker (`publish_cloud_events`) and a raw producer.
3. Baselines of the webhooks: the receiver's own ceiling (raw keep-alive client), signed POSTs
   through `WebhookSender` and through a plain httpx client, FerretDB bulk inserts of delivery
   documents and bulk outcome updates.
4. Webhooks: M public events are produced, K subscriptions created through the agencies' API,
   then `Webhooks` (dispatcher, batch consumer, outcome writer) starts; the clock runs until the
   receiver (a separate process, `bench/webhook_receiver.py`, verifying every signature) has
   M x K deliveries and their outcomes are written to MongoDB. Then a steady-rate phase gives the
   latency from the public record to its receipt.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from services.notification.main import build_webhooks as Webhooks
from services.notification.settings import NotificationSettings
from services.notification.webhooks import api as webhooks_api
from services.notification.webhooks.adapters.sender import WebhookSender
from services.notification.webhooks.adapters.store import WebhookStore
from services.notification.webhooks.adapters.url_check import check_url
from services.notification.webhooks.domain.projection import public_cloud_event
from services.notification.webhooks.domain.queues import QueuedDelivery
from services.notification.webhooks.domain.signing import new_secret, signature_headers
from services.notification.webhooks.domain.subscriptions import (
    DeliveryStatus,
    DispatchConfig,
    webhook_body,
)
from services.notification.webhooks.service import PublicStream
from shared.contracts.cloudevents import CloudEvent, KafkaRecord, unwrap, wrap
from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DossierProcessed,
    DossierState,
    DossierSubmitted,
    PublicDossierStatus,
)
from shared.contracts.topics import (
    PUBLIC_DOSSIER_STATUS_TOPIC,
    PUBLIC_STREAM_GROUP,
    WEBHOOK_GROUP,
    TopicSpec,
    dead_letter_topic,
    platform_topics,
)
from shared.runtime.batch_consumer import BatchConsumer, Parsed, routes_for
from shared.runtime.consumer import RetryPolicy
from shared.runtime.http import install_problem_handlers
from shared.runtime.kafka import create_broker, ensure_topics, publish_cloud_events
from shared.runtime.mongo import create_mongo_client
from shared.runtime.service import ServiceContext

BENCH_DIR = Path(__file__).resolve().parent
DEVSTACK_RUN = BENCH_DIR.parent / ".devstack" / "run"
SOURCE = "/bench/agencies"


# ---------------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[q - 1]


def rate_windows(samples: list[tuple[float, int]], total: int) -> str:
    """Rates between 20 % and 80 % of the total (steady state), from (seconds, count) samples."""
    window = [s for s in samples if 0.2 * total <= s[1] <= 0.8 * total]
    if len(window) >= 2 and window[-1][0] > window[0][0]:
        return f"{(window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]):.0f}/s"
    return "n/a"


def _proc_cpu_seconds(pid: int, reaped_children: bool = False) -> float | None:
    """User + system CPU seconds of a process; with `reaped_children`, also those of its children
    that have exited (PostgreSQL's backends: a closed connection's time moves to the postmaster)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pid_file(name: str) -> int | None:
    try:
        return int((DEVSTACK_RUN / name / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError):
        return None


@dataclass
class CpuMeter:
    """CPU cores used by this process, the run-profile Kafka and FerretDB, the receiver and the
    rest of the machine (e.g. the test profile and others' tests) during one phase."""

    pids: dict[str, int | None]
    began: float = 0.0
    start: dict[str, float] = field(default_factory=dict)

    def begin(self) -> CpuMeter:
        self.began = time.perf_counter()
        self.start = self._read()
        return self

    def end(self) -> None:
        self.wall = time.perf_counter() - self.began
        end = self._read()
        self.cores = {k: (end[k] - self.start[k]) / self.wall for k in end if k in self.start}

    def __enter__(self) -> CpuMeter:
        return self.begin()

    def __exit__(self, *_: object) -> None:
        self.end()

    def _read(self) -> dict[str, float]:
        readings = {"bench": _self_cpu_seconds(), "machine": _machine_busy_seconds()}
        for name, pid in self.pids.items():
            value = _proc_cpu_seconds(pid) if pid else None
            if value is not None:
                readings[name] = value
        return readings

    def line(self) -> str:
        ours = sum(v for k, v in self.cores.items() if k != "machine")
        parts = [f"{k} {v:.2f}" for k, v in self.cores.items() if k != "machine"]
        parts.append(f"other {max(self.cores.get('machine', 0.0) - ours, 0.0):.2f}")
        return "cpu cores used      " + ", ".join(parts) + f" (of {os.cpu_count()})"


async def produce(
    bootstrap: str, records: Iterable[tuple[str, KafkaRecord]], chunk: int = 5000
) -> tuple[int, float]:
    """Send (topic, record) pairs with send() + gather (acks=all); returns (count, seconds)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    began = time.perf_counter()
    count = 0
    try:
        pending = []
        for topic, record in records:
            pending.append(
                await producer.send(topic, record.value, key=record.key, headers=record.headers)
            )
            count += 1
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count, time.perf_counter() - began


async def paced(
    producer: AIOKafkaProducer,
    items: list[tuple[str, KafkaRecord, str]],
    rate: float,
) -> dict[str, float]:
    """Send (topic, record, id) items at `rate` per second; returns id -> send time (Unix s)."""
    sent: dict[str, float] = {}
    pending = []
    began = time.perf_counter()
    for index, (topic, record, ident) in enumerate(items):
        due = began + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[ident] = time.time()
        pending.append(
            await producer.send(topic, record.value, key=record.key, headers=record.headers)
        )
    await asyncio.gather(*pending)
    return sent


async def end_offsets_total(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
    offsets = await consumer.end_offsets(partitions)
    return sum(offsets.values())


async def read_all(
    bootstrap: str, partitions: list[TopicPartition], expected: int, within: float = 60
) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        async with asyncio.timeout(within):
            while len(records) < expected:
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for batch in batches.values():
                    records.extend(batch)
        return records
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------------- sample data


def dossier_code(run: str, index: int) -> str:
    day, sequence = divmod(index, 10_000)
    return f"000.00.21.{run}-{260101 + day:06d}-{sequence:04d}"


def internal_event(run: str, index: int) -> DossierSubmitted | DossierProcessed:
    """Half submissions, half intake steps, each of its own dossier."""
    code = dossier_code(run, index)
    now = datetime.now(UTC)
    if index % 2 == 0:
        return DossierSubmitted(
            dossier_code=code,
            occurred_at=now,
            procedure_code="1.004473",
            unit_code="G12",
            level=4,
            channel=Channel.ONLINE,
            applicant=Applicant(
                kind=ApplicantKind.PERSON, name="Nguyễn Văn A", identifier="001203004567"
            ),
            contact=Contact(email="a@example.vn", phone="0912345678"),
            fee_vnd=300_000,
        )
    return DossierProcessed(
        dossier_code=code,
        occurred_at=now,
        procedure_code="1.004473",
        unit_code="G12",
        action="receive",
        state=DossierState.RECEIVED,
        previous_state=DossierState.SUBMITTED,
        actor="officer-1",
    )


def public_event(run: str, index: int) -> CloudEvent:
    return wrap(
        PublicDossierStatus(
            dossier_code=dossier_code(run, index),
            occurred_at=datetime.now(UTC),
            procedure_code="1.004473",
            unit_code="G12",
            state=DossierState.SUBMITTED,
            action="submit",
            channel=Channel.ONLINE,
        ),
        "/dvc/notification/public-stream",
    )


# ---------------------------------------------------------------------------------- phases


@dataclass
class Bench:
    args: argparse.Namespace
    token: str
    settings: NotificationSettings
    receiver_port: int
    pids: dict[str, int | None]

    @property
    def bootstrap(self) -> str:
        return str(self.args.kafka)

    def meter(self) -> CpuMeter:
        return CpuMeter(self.pids)

    async def receiver(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.receiver_port}") as c:
            answer = await c.request(method, path, json=body)
            answer.raise_for_status()
            return answer.json()


async def projection(bench: Bench) -> None:
    args, settings = bench.args, bench.settings
    n = args.events
    topic_of = {m: settings.topic(m.topic) for m in (DossierSubmitted, DossierProcessed)}
    public_topic = settings.topic(PUBLIC_DOSSIER_STATUS_TOPIC)

    def records(start: int, stop: int) -> Iterable[tuple[str, KafkaRecord]]:
        for i in range(start, stop):
            event = internal_event("P01", i)
            yield topic_of[type(event)], wrap(event, SOURCE).to_kafka()

    count, seconds = await produce(bench.bootstrap, records(0, n))
    print(f"\n== 1. projection (internal -> {public_topic})")
    print(f"pre-produced        {count} internal events in {seconds:.2f}s")

    broker = create_broker(bench.bootstrap, "notification")
    await broker.start()
    public = PublicStream(broker, public_topic)
    handler_time = [0.0, 0, 0]  # seconds in publish_batch, batches, records

    async def handle(batch: list[Parsed]) -> None:
        began = time.perf_counter()
        await public.publish_batch(batch)
        handler_time[0] += time.perf_counter() - began
        handler_time[1] += 1
        handler_time[2] += len(batch)

    consumer = BatchConsumer(
        settings,
        broker,
        group=PUBLIC_STREAM_GROUP,
        routes=routes_for(settings, [DossierSubmitted, DossierProcessed]),
        handle=handle,
        policy=RetryPolicy(settings.consumer_max_attempts, settings.consumer_backoff_seconds),
        max_records=settings.public_stream_batch_size,
    )
    watcher = AIOKafkaConsumer(bootstrap_servers=bench.bootstrap, enable_auto_commit=False)
    await watcher.start()
    partitions = [TopicPartition(public_topic, p) for p in range(args.partitions)]
    samples: list[tuple[float, int]] = []
    try:
        with bench.meter() as cpu:
            began = time.perf_counter()
            await consumer.start()
            async with asyncio.timeout(args.timeout):
                while (done := await end_offsets_total(watcher, partitions)) < n:
                    samples.append((time.perf_counter() - began, done))
                    await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - began
        samples.append((elapsed, n))
        first = next((t for t, c in samples if c), elapsed)
        busy, batches, handled = handler_time
        print(f"projected           {n} events in {elapsed:.2f}s -> {n / elapsed:.0f} events/s")
        print(f"steady rate         {rate_windows(samples, n)} (20..80 %)")
        print(f"first public record {first:.2f}s after start (group join included)")
        print(
            f"batches             {batches}, {handled / max(batches, 1):.0f} records each "
            f"(max {settings.public_stream_batch_size}); publish_batch busy "
            f"{busy:.2f}s = {busy / elapsed:.0%} of the wall time"
        )
        print(cpu.line())

        # Latency at a steady rate below the ceiling: source record -> public record.
        rate, total = args.paced_rate, int(args.paced_rate * args.paced_seconds)
        items = [(topic, record, record.key.decode()) for topic, record in records(n, n + total)]
        producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, acks="all", linger_ms=1)
        await producer.start()
        try:
            sent = await paced(producer, items, rate)
        finally:
            await producer.stop()
        async with asyncio.timeout(args.timeout):
            while await end_offsets_total(watcher, partitions) < n + total:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the state is in the broker
    finally:
        await watcher.stop()
        await consumer.stop()
        await broker.stop()
    public_records = await read_all(bench.bootstrap, partitions, n + total)
    latencies = [
        (r.timestamp / 1000 - sent[r.key.decode()]) * 1000
        for r in public_records
        if r.key and r.key.decode() in sent
    ]
    print(
        f"latency at {rate:.0f}/s    p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms "
        f"({len(latencies)} events over {args.paced_seconds:.0f}s; source send -> public record)"
    )


async def projection_baselines(bench: Bench, scratch_topic: str) -> None:
    """Where the projection's time goes per record, without the consumer."""
    n = min(bench.args.events, 10_000)
    run = "B01"
    records = [wrap(internal_event(run, i), SOURCE).to_kafka() for i in range(n)]
    models = [DossierSubmitted, DossierProcessed]
    print("\n== 2. projection baselines")
    began = time.perf_counter()
    parsed = []
    for record in records:
        cloud_event = CloudEvent.from_kafka(record.value, record.headers)
        parsed.append((unwrap(cloud_event, models), cloud_event))
    parse = (time.perf_counter() - began) / n
    began = time.perf_counter()
    events = [public_cloud_event(event, cloud_event) for event, cloud_event in parsed]
    project = (time.perf_counter() - began) / n
    began = time.perf_counter()
    public_records = [event.to_kafka() for event in events]
    encode = (time.perf_counter() - began) / n
    print(
        f"cpu per record      parse {parse * 1e6:.0f} us, project {project * 1e6:.0f} us, "
        f"to_kafka {encode * 1e6:.0f} us -> ceiling {1 / (parse + project + encode):.0f}/s "
        f"of pure Python"
    )
    batch = bench.settings.public_stream_batch_size
    broker = create_broker(bench.bootstrap, "notification")
    await broker.start()
    try:
        with bench.meter() as cpu:
            began = time.perf_counter()
            for start in range(0, n, batch):
                await publish_cloud_events(broker, scratch_topic, events[start : start + batch])
            seconds = time.perf_counter() - began
        print(
            f"publish (service)   {n / seconds:.0f} records/s: publish_cloud_events via the "
            f"FastStream broker, batches of {batch}"
        )
        print(cpu.line())
    finally:
        await broker.stop()
    producer = AIOKafkaProducer(
        bootstrap_servers=bench.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        with bench.meter() as cpu:
            began = time.perf_counter()
            for start in range(0, n, batch):
                pending = [
                    await producer.send(scratch_topic, r.value, key=r.key, headers=r.headers)
                    for r in public_records[start : start + batch]
                ]
                await asyncio.gather(*pending)
            seconds = time.perf_counter() - began
        print(
            f"publish (aiokafka)  {n / seconds:.0f} records/s: raw producer, same records, "
            f"acks=all, idempotent, batches of {batch}"
        )
        print(cpu.line())
    finally:
        await producer.stop()


async def receiver_ceiling(bench: Bench, secret: str, seconds: float = 3.0) -> float:
    """Signed POSTs on 8 raw keep-alive connections, one request in flight each."""
    body = webhook_body(public_event("C01", 1))
    headers = signature_headers(secret, str(uuid.uuid4()), int(time.time()), body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /hooks/baseline HTTP/1.1\r\nhost: 127.0.0.1\r\n{head}"
        f"content-type: application/cloudevents+json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    count = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", bench.receiver_port)
        while time.perf_counter() < deadline:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            count += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(8)))
    return count / (time.perf_counter() - began)


async def webhook_baselines(bench: Bench, mongo: Any) -> None:
    args, settings = bench.args, bench.settings
    print("\n== 3. webhook baselines")
    secret = new_secret()
    await bench.receiver("POST", "/secrets", {"baseline": secret})
    with bench.meter() as cpu:
        ceiling = await receiver_ceiling(bench, secret)
    stats = await bench.receiver("GET", "/stats")
    print(
        f"receiver ceiling    {ceiling:.0f} requests/s (8 raw keep-alive connections, signature "
        f"verified each; {stats['bad_signatures']} bad)"
    )
    print(cpu.line())

    url = f"http://127.0.0.1:{bench.receiver_port}/hooks/baseline"
    concurrency = args.workers * args.subscriptions
    count = 3000
    deliveries = []
    for i in range(count):
        event = public_event("T01", i)
        deliveries.append(
            QueuedDelivery(str(i), event.subject, event.id, webhook_body(event), 0, i)
        )

    async def drive(send: Callable[[QueuedDelivery], Awaitable[bool]]) -> tuple[float, int]:
        queue = list(reversed(deliveries))
        failures = 0

        async def worker() -> None:
            nonlocal failures
            while queue:
                if not await send(queue.pop()):
                    failures += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - began), failures

    sender = WebhookSender(
        DispatchConfig(
            retry_schedule=(1.0,),
            timeout=settings.webhook_timeout_seconds,
            allow_private_urls=True,
            max_connections=settings.webhook_max_connections,
        )
    )

    async def via_sender(delivery: QueuedDelivery) -> bool:
        return (await sender.send(url, secret, delivery)).ok

    plain_client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=settings.webhook_max_connections)
    )

    async def plain(delivery: QueuedDelivery) -> bool:
        headers = signature_headers(secret, delivery.event_id, int(time.time()), delivery.body)
        answer = await plain_client.post(url, content=delivery.body, headers=headers)
        return answer.status_code == 204

    async def url_check(_delivery: QueuedDelivery) -> bool:
        await check_url(url, allow_private=True)
        return True

    try:
        steps = (
            ("WebhookSender.send", via_sender),  # aiohttp
            ("httpx post (ref.)", plain),
            ("check_url alone", url_check),
        )
        for label, send in steps:
            with bench.meter() as cpu:
                rate, failures = await drive(send)
            print(
                f"{label:<19} {rate:.0f}/s ({concurrency} concurrent, one client, "
                f"{failures} failed)"
            )
            print(cpu.line())
    finally:
        await sender.close()
        await plain_client.aclose()

    store = WebhookStore(mongo[f"{settings.database_name}_baseline"])
    await store.ensure_indexes()
    now = datetime.now(UTC)
    documents = [
        {
            "_id": f"sub:{d.event_id}",
            "subscription_id": "sub",
            "agency_id": "agency",
            "event_id": d.event_id,
            "event_type": "submit",
            "dossier_code": d.dossier_code,
            "occurred_at": now,
            "partition": 0,
            "seq": d.seq,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "body": d.body,
        }
        for d in deliveries
    ]
    batch = settings.webhook_batch_size
    with bench.meter() as cpu:
        began = time.perf_counter()
        for start in range(0, count, batch):
            await store.insert_deliveries(documents[start : start + batch])
        seconds = time.perf_counter() - began
    print(f"ferretdb insert     {count / seconds:.0f} delivery documents/s (bulk of {batch})")
    print(cpu.line())
    # Outcome updates (by _id, as OutcomeWriter writes them) at two collection sizes: FerretDB
    # 1.24's SQLite backend scans the collection for every update, so the cost grows with it.
    update = {
        "$set": {
            "attempts": 1,
            "last_attempt_at": now,
            "last_status_code": 204,
            "last_error": None,
            "status": DeliveryStatus.DELIVERED,
            "delivered_at": now,
        },
        "$unset": {"body": "", "next_attempt_at": ""},
    }
    ids = [d["_id"] for d in documents]
    sizes = (count // 3, count)
    await store.deliveries.delete_many({"_id": {"$in": ids[sizes[0] :]}})
    for round_, size in enumerate(sizes):
        if size == count:
            await store.insert_deliveries(documents[sizes[0] :])
        probe = ids[round_ * 100 : round_ * 100 + 100]  # pending ones: a real change each
        with bench.meter() as cpu:
            began = time.perf_counter()
            for start in range(0, len(probe), 50):
                await store.write_outcomes((i, update) for i in probe[start : start + 50])
            seconds = time.perf_counter() - began
        print(
            f"ferretdb outcomes   {len(probe) / seconds:.0f} updates/s "
            f"({seconds / len(probe) * 1000:.1f} ms each; bulk of 50, {size} documents)"
        )
        print(cpu.line())
    await mongo.drop_database(f"{settings.database_name}_baseline")
    await bench.receiver("POST", "/reset")


async def webhooks(bench: Bench, mongo: Any, topic: str) -> None:
    args = bench.args
    settings = bench.settings.model_copy(update={"topic_suffix": bench.settings.topic_suffix + "w"})
    m, k = args.hook_events, args.subscriptions
    expected = m * k
    events = [public_event("H01", i) for i in range(m)]
    count, seconds = await produce(bench.bootstrap, ((topic, e.to_kafka()) for e in events))
    print(f"\n== 4. webhooks ({topic} -> {k} subscription(s) -> local receiver)")
    print(f"pre-produced        {count} public events in {seconds:.2f}s")
    broker = create_broker(bench.bootstrap, "notification")
    context = ServiceContext(settings, broker, mongo, mongo[settings.database_name])
    service = Webhooks(settings, context)

    # Instrumentation (wrapping the store and the sender of this instance only).
    stats = {"inserted": 0, "insert_s": 0.0, "outcome_calls": 0, "outcomes": 0, "outcome_s": 0.0}
    stats |= {"delivered": 0, "attempts": 0, "attempt_s": 0.0}
    insert, write, send = (
        service.store.insert_deliveries,
        service.store.write_outcomes,
        service.dispatcher.sender.send,
    )

    async def counted_insert(documents: list[dict[str, Any]]) -> set[str]:
        began = time.perf_counter()
        result = await insert(documents)
        stats["insert_s"] += time.perf_counter() - began
        stats["inserted"] += len(result)
        return result

    async def counted_write(updates: Iterable[tuple[str, dict[str, Any]]]) -> None:
        updates = list(updates)
        began = time.perf_counter()
        await write(updates)
        stats["outcome_s"] += time.perf_counter() - began
        stats["outcome_calls"] += 1
        stats["outcomes"] += len(updates)
        stats["delivered"] += sum(
            u.get("$set", {}).get("status") == DeliveryStatus.DELIVERED for _, u in updates
        )

    async def timed_send(url: str, secret: str, delivery: QueuedDelivery) -> Any:
        began = time.perf_counter()
        try:
            return await send(url, secret, delivery)
        finally:
            stats["attempt_s"] += time.perf_counter() - began
            stats["attempts"] += 1

    service.store.insert_deliveries = counted_insert  # type: ignore[method-assign]
    service.store.write_outcomes = counted_write  # type: ignore[method-assign]
    service.dispatcher.sender.send = timed_send  # type: ignore[method-assign]

    # Agencies create their subscriptions through the API (before the consumer starts).
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(webhooks_api.router)
    app.state.webhooks = service
    await broker.start()
    secrets: dict[str, str] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notification"
    ) as client:
        key = await service.store.create_agency("bench-agency", "Sở KH&CN (bench)")
        for n in range(k):
            answer = await client.post(
                "/api/v1/webhooks/subscriptions",
                json={"url": f"http://127.0.0.1:{bench.receiver_port}/hooks/s{n}"},
                headers={"Authorization": f"Bearer {key}"},
            )
            answer.raise_for_status()
            secrets[f"s{n}"] = answer.json()["secret"]
    await bench.receiver("POST", "/secrets", secrets)

    samples: list[tuple[float, int, int]] = []
    cpu = bench.meter()
    latencies: list[float] = []
    try:
        began = time.perf_counter()
        cpu.begin()
        async with service.lifecycle():
            received_all: float | None = None
            try:
                async with asyncio.timeout(args.timeout):
                    while True:
                        received = (await bench.receiver("GET", "/stats"))["distinct"]
                        now = time.perf_counter() - began
                        samples.append((now, received, stats["delivered"]))
                        if received >= expected and stats["delivered"] >= expected:
                            break
                        if received >= expected:
                            received_all = received_all or now
                            if now - received_all > args.record_timeout:
                                print(
                                    f"STOPPED waiting for outcome writes {args.record_timeout:.0f}s"
                                    " after the last delivery (--record-timeout); partial figures:"
                                )
                                break
                        await asyncio.sleep(0.1)
            except TimeoutError:
                print(f"TIMED OUT after {args.timeout:.0f}s (--timeout); partial figures:")
            completed = bool(samples) and samples[-1][1] >= expected
            elapsed = time.perf_counter() - began
            cpu.end()
            receipt = await bench.receiver("GET", "/stats")
            report_webhooks(args, samples, stats, receipt, elapsed, expected, cpu)
            if completed and args.hook_paced_rate > 0:
                latencies = await hook_latency(bench, topic, expected)
            # Outcomes not written yet would be flushed on exit, which on FerretDB may take
            # minutes; the database is dropped anyway.
            service.dispatcher.writer._pending.clear()
    finally:
        await broker.stop()
    if latencies:
        print(
            f"latency at {args.hook_paced_rate:.0f}/s     p50 {percentile(latencies, 50):.0f} ms, "
            f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms "
            f"({len(latencies)} deliveries; public record sent -> receipt)"
        )
    db = mongo[settings.database_name]
    delivered = await db["webhook_deliveries"].count_documents({"status": "delivered"})
    others = await db["webhook_deliveries"].count_documents({"status": {"$ne": "delivered"}})
    print(f"delivery log        {delivered} delivered, {others} not delivered (in MongoDB)")
    final = await bench.receiver("GET", "/stats")
    print(f"signatures          {final['bad_signatures']} failed verification")


async def hook_latency(bench: Bench, topic: str, already: int) -> list[float]:
    """Public events at a steady rate while the webhooks run: record sent -> receipt (ms)."""
    args = bench.args
    rate, total = args.hook_paced_rate, int(args.hook_paced_rate * args.paced_seconds)
    paced_events = [public_event("L01", i) for i in range(total)]
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, acks="all", linger_ms=1)
    await producer.start()
    try:
        sent = await paced(producer, [(topic, e.to_kafka(), e.id) for e in paced_events], rate)
    finally:
        await producer.stop()
    target = already + total * args.subscriptions
    try:
        async with asyncio.timeout(args.timeout):
            while (await bench.receiver("GET", "/stats"))["distinct"] < target:  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # the state is in the receiver process
    except TimeoutError:
        print(f"latency phase timed out after {args.timeout:.0f}s; latencies of those received")
    receipts = await bench.receiver("GET", "/receipts")
    return [(at - sent[i]) * 1000 for _, i, at in receipts if i in sent]


def report_webhooks(
    args: argparse.Namespace,
    samples: list[tuple[float, int, int]],
    stats: dict[str, Any],
    receipt: dict[str, Any],
    elapsed: float,
    expected: int,
    cpu: CpuMeter,
) -> None:
    at_receiver = next((t for t, r, _ in samples if r >= expected), elapsed)
    received_count = samples[-1][1] if samples else 0
    first = next((t for t, r, _ in samples if r), elapsed)
    received = rate_windows([(t, r) for t, r, _ in samples], expected)
    recorded = rate_windows([(t, d) for t, _, d in samples], expected)
    print(
        f"at the receiver     {received_count} of {expected} deliveries in {at_receiver:.2f}s -> "
        f"{received_count / at_receiver:.0f}/s; steady {received} (20..80 %)"
    )
    print(
        f"recorded delivered  {stats['delivered']} outcomes written in {elapsed:.2f}s -> "
        f"{stats['delivered'] / elapsed:.0f}/s; steady {recorded} (20..80 %)"
    )
    print(f"first delivery      {first:.2f}s after start (group join included)")
    print(
        f"receiver            {receipt['received']} requests, {receipt['distinct']} distinct, "
        f"{receipt['bad_signatures']} bad signatures"
    )
    attempts = max(stats["attempts"], 1)
    mean = stats["attempt_s"] / attempts
    workers = args.workers * args.subscriptions
    print(
        f"attempt time        mean {mean * 1000:.1f} ms over {stats['attempts']} attempts; "
        f"{workers} workers -> at most {workers / max(mean, 1e-9):.0f}/s"
    )
    busy = max(stats["insert_s"], 1e-9)
    print(
        f"intake (insert)     {stats['inserted']} deliveries; insert_deliveries busy "
        f"{stats['insert_s']:.2f}s ({stats['inserted'] / busy:.0f} docs/s while busy)"
    )
    calls = max(stats["outcome_calls"], 1)
    print(
        f"outcome writes      {stats['outcome_calls']} bulk writes of "
        f"{stats['outcomes'] / calls:.0f} updates; busy {stats['outcome_s']:.2f}s = "
        f"{stats['outcome_s'] / elapsed:.0%} of the wall time"
    )
    print(cpu.line())


async def delete_topics(bootstrap: str, token: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if token in t]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def run(args: argparse.Namespace, receiver_port: int, receiver_pid: int) -> None:
    token = uuid.uuid4().hex[:8]
    settings = NotificationSettings(
        environment="development",
        kafka_bootstrap=args.kafka,
        mongo_url=args.mongo,
        mongo_database=f"bench_agencies_{token}",
        topic_suffix=f".bench{token}",
        webhook_allow_private_urls=True,
        webhook_workers_per_subscription=args.workers,
        log_level="WARNING",
    )
    pids = {"kafka": _pid_file("kafka"), "ferretdb": _pid_file("ferretdb")}
    pids["receiver"] = receiver_pid
    bench = Bench(args, token, settings, receiver_port, pids)
    print(
        f"machine             {os.cpu_count()} cores, {platform.processor() or platform.machine()}"
        f", Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"run                 suffix {settings.topic_suffix}, database {settings.database_name}")
    hook_topic = settings.topic(PUBLIC_DOSSIER_STATUS_TOPIC) + "w"
    scratch = f"bench.scratch{settings.topic_suffix}"
    specs = platform_topics(partitions=args.partitions, suffix=settings.topic_suffix)
    specs += [
        TopicSpec(hook_topic, args.partitions, None),
        TopicSpec(dead_letter_topic(hook_topic, WEBHOOK_GROUP), 1, None),
        TopicSpec(scratch, args.partitions, None),
    ]
    await ensure_topics(args.kafka, specs)
    mongo = create_mongo_client(args.mongo)
    try:
        async with asyncio.timeout(15):
            while True:
                try:
                    await bench.receiver("GET", "/stats")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        if "projection" in args.phases:
            await projection(bench)
            await projection_baselines(bench, scratch)
        if "webhooks" in args.phases:
            await webhook_baselines(bench, mongo)
            await webhooks(bench, mongo, hook_topic)
    finally:
        await mongo.drop_database(settings.database_name)
        await mongo.close()
        await delete_topics(args.kafka, token)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmax RSS             {rss:.0f} MiB (this process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="projection events")
    parser.add_argument("--hook-events", type=int, default=5000, help="public events (webhooks)")
    parser.add_argument("--subscriptions", type=int, default=1)
    parser.add_argument("--workers", type=int, default=16, help="workers per subscription")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--paced-rate", type=float, default=500, help="projection, events/s")
    parser.add_argument("--hook-paced-rate", type=float, default=100, help="webhooks, events/s")
    parser.add_argument("--paced-seconds", type=float, default=5)
    parser.add_argument("--phases", default="projection,webhooks")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--record-timeout",
        type=float,
        default=60,
        help="seconds to wait for the outcome writes once every delivery has arrived",
    )
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "webhook_receiver.py"), "--port", str(port)]
    )
    try:
        asyncio.run(run(args, port, receiver.pid))
    finally:
        receiver.terminate()
        receiver.wait(10)


if __name__ == "__main__":
    main()

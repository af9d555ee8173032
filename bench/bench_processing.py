"""Processing throughput and worklist latency against the real broker and database.

Run (the test-profile servers, started by `.venv/bin/python -m devstack --profile test up`):
    .venv/bin/python bench/bench_processing.py [--events 5000] [--cases 100000]

Prints figures only, met or not:
- input events/s through processing: submitted dossiers published to Kafka, consumed, and stored
  as cases (online: one write each; paper: a case with its `receive` event, which the outbox
  relay then publishes, so the end-to-end figure includes the relay);
- the worklist query (one unit's page of 50, online first then by due date) with N open cases
  bulk-inserted directly, p50/p99 at the store and through the HTTP API;
- the deadline engine's figure, from bench/bench_deadlines.py.
Targets: >= 1,000 input events/s sustained; worklist p99 <= 50 ms at 100,000 open cases;
>= 50,000 due dates/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

from services.processing.adapters.store import _fields
from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.case import Case
from services.processing.domain.workflow import Rules, refresh
from services.processing.main import create_app
from services.processing.settings import ProcessingSettings
from shared.contracts.catalogue import Procedure, ProcessingTime, TimeUnit
from shared.contracts.cloudevents import wrap
from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DossierState,
    DossierSubmitted,
)
from shared.contracts.topics import (
    CATALOGUE_TOPIC,
    DOSSIER_PAID_TOPIC,
    DOSSIER_PROCESSED_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    DOSSIER_SUPPLEMENTED_TOPIC,
    DOSSIER_WITHDRAWN_TOPIC,
    PROCESSING_GROUP,
    TopicSpec,
    dead_letter_topic,
)
from shared.runtime.auth import DevIssuer
from shared.runtime.kafka import ensure_topics
from shared.runtime.mongo import create_mongo_client

CONSUMED = (
    CATALOGUE_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    DOSSIER_SUPPLEMENTED_TOPIC,
    DOSSIER_WITHDRAWN_TOPIC,
    DOSSIER_PAID_TOPIC,
)
UNITS = [f"G{n:02d}" for n in range(10, 30)]  # 20 units
PROCEDURE = Procedure(
    code="1.004473",
    name="Thủ tục đo",
    unit_code="G12",
    unit_name="Cục",
    field="KH&CN",
    level=4,
    processing_time=ProcessingTime(value=10, unit=TimeUnit.WORKING_DAYS),
)


def one_connection(url: str) -> str:
    # FerretDB 1.24 loses concurrent updates from different connections (see the tests).
    return url + ("&" if "?" in url else "?") + "maxPoolSize=1"


async def until(count: Any, target: int) -> None:
    """Poll `count()` until it reaches `target`."""
    while True:
        if await count() >= target:
            return
        await asyncio.sleep(0.5)  # a count is a full scan on FerretDB: poll gently


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def submitted(n: int, channel: Channel, day: str) -> DossierSubmitted:
    return DossierSubmitted(
        dossier_code=f"000.00.21.G12-{day}-{n:04d}",
        occurred_at=datetime.now(UTC),
        procedure_code=PROCEDURE.code,
        unit_code="G12",
        level=4,
        channel=channel,
        applicant=Applicant(kind=ApplicantKind.PERSON, name="Nguyễn Văn A", identifier="0" * 12),
        contact=Contact(email="a@example.vn"),
    )


async def create_topics(bootstrap: str, suffix: str, within: float = 30.0) -> None:
    """Create the service's suffixed topics and wait until the broker's metadata lists each with
    a leader for every partition: a consumer started earlier fails with
    `UnknownTopicOrPartitionError`."""
    specs = [TopicSpec(f"{t}{suffix}", 1 if t == CATALOGUE_TOPIC else 3, None) for t in CONSUMED]
    specs.append(TopicSpec(f"{DOSSIER_PROCESSED_TOPIC}{suffix}", 3, None))
    specs += [
        TopicSpec(dead_letter_topic(f"{t}{suffix}", PROCESSING_GROUP), 1, None) for t in CONSUMED
    ]
    await ensure_topics(bootstrap, specs)
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        async with asyncio.timeout(within):
            while True:
                cluster = await client.fetch_all_metadata()
                if all(
                    len(cluster.available_partitions_for_topic(s.name)) == s.partitions
                    for s in specs
                ):
                    return
                await asyncio.sleep(0.2)
    finally:
        await client.close()


async def throughput(args: argparse.Namespace) -> None:
    unique = uuid.uuid4().hex[:8]
    suffix, database = f".bench{unique}", f"bench_{unique}"
    await create_topics(args.kafka, suffix)
    settings = ProcessingSettings(
        kafka_bootstrap=args.kafka,
        mongo_url=one_connection(args.mongo),
        mongo_database=database,
        topic_suffix=suffix,
        scanner_enabled=False,
        outbox_poll_seconds=5.0,  # the relay is poked on every write; polling is a fallback
    )
    app = create_app(settings)
    producer = AIOKafkaProducer(bootstrap_servers=args.kafka, acks="all", linger_ms=5)
    mongo = create_mongo_client(args.mongo)
    cases = mongo[database]["cases"]
    try:
        async with app.router.lifespan_context(app):
            await producer.start()

            async def send(model: Any) -> None:
                record = wrap(model, "/bench").to_kafka()
                await producer.send(
                    f"{model.topic}{suffix}", record.value, key=record.key, headers=record.headers
                )

            await send(PROCEDURE)
            # Online dossiers: a case each (state 1), no outgoing event.
            for label, channel, day, n in (
                ("online submitted (case write only)", Channel.ONLINE, "260101", args.events),
                ("paper submitted (case + receive event)", Channel.COUNTER, "260102", args.events),
            ):
                before = await cases.count_documents({})
                started = time.perf_counter()
                for i in range(1, n + 1):
                    await send(submitted(i, channel, day))
                await producer.flush()
                published = time.perf_counter() - started
                await until(lambda: cases.count_documents({}), before + n)
                consumed = time.perf_counter() - started
                print(
                    f"{label:<42} {n / consumed:>8,.0f} events/s "
                    f"({n:,} in {consumed:.1f} s; publishing took {published:.1f} s)"
                )
                if channel == Channel.COUNTER:
                    await until(
                        lambda: cases.count_documents({"outbox_pending": False}), before + n
                    )
                    end_to_end = time.perf_counter() - started
                    print(
                        f"{'  ... and their events out (outbox relay)':<42} "
                        f"{n / end_to_end:>8,.0f} events/s ({end_to_end:.1f} s)"
                    )
    finally:
        await producer.stop()
        await mongo.drop_database(database)
        await mongo.close()


def open_case_document(n: int, rng: random.Random, now: datetime, rules: Rules) -> dict[str, Any]:
    channel = Channel.ONLINE if rng.random() < 0.6 else Channel.COUNTER
    state = rng.choice(
        [DossierState.SUBMITTED, DossierState.IN_PROCESSING, DossierState.IN_PROCESSING]
    )
    due = (
        None if state == DossierState.SUBMITTED else now + timedelta(hours=rng.randrange(-48, 500))
    )
    case = Case(
        code=f"000.00.21.{rng.choice(UNITS)}-{260000 + n // 10000:06d}-{n % 10000:04d}",
        procedure_code=f"1.00{rng.randrange(100, 160)}",
        procedure_name="Thủ tục",
        unit_code=rng.choice(UNITS),
        level=4,
        channel=channel,
        state=state,
        applicant_name="Nguyễn Văn A",
        submitted_at=now - timedelta(days=rng.randrange(30)),
        due_at=due,
    )
    case = refresh(case, rules)
    return {"_id": case.code, **_fields(case), "version": 1, "history": []}


async def worklist(args: argparse.Namespace) -> None:
    rules = Rules(WorkingCalendar(), warning_fractions=())  # no scheduling needed here
    unique = uuid.uuid4().hex[:8]
    database, suffix = f"bench_worklist_{unique}", f".benchw{unique}"
    issuer = DevIssuer(Path(os.environ.get("TMPDIR", "/tmp")) / "dvc-bench-issuer")
    await create_topics(args.kafka, suffix)  # the HTTP part starts the service's consumers
    settings = ProcessingSettings(
        kafka_bootstrap=args.kafka,
        mongo_url=one_connection(args.mongo),
        mongo_database=database,
        topic_suffix=suffix,
        scanner_enabled=False,
        jwt_public_key_file=str(issuer.public_key_path),
    )
    app = create_app(settings)
    processing = app.state.processing  # main.Processing
    mongo = create_mongo_client(args.mongo)
    try:
        await processing.store.ensure_indexes()
        rng = random.Random(4094)
        now = datetime.now(UTC)
        started = time.perf_counter()
        batch: list[dict[str, Any]] = []
        for n in range(args.cases):
            batch.append(open_case_document(n, rng, now, rules))
            if len(batch) == 1000:
                await mongo[database]["cases"].insert_many(batch, ordered=False)
                batch = []
        if batch:
            await mongo[database]["cases"].insert_many(batch, ordered=False)
        print(
            f"set-up: {args.cases:,} open cases inserted in {time.perf_counter() - started:.1f} s"
        )

        samples: list[float] = []
        for i in range(args.queries):
            unit = UNITS[i % len(UNITS)]
            began = time.perf_counter()
            await processing.store.worklist(unit_code=unit, limit=50)
            samples.append((time.perf_counter() - began) * 1000)
        print(
            f"worklist at the store (unit page of 50)     p50 {percentile(samples, 50):6.1f} ms"
            f"   p99 {percentile(samples, 99):6.1f} ms   ({args.queries} queries)"
        )
        overdue: list[float] = []
        for i in range(args.queries // 4):
            began = time.perf_counter()
            await processing.store.worklist(
                unit_code=UNITS[i % len(UNITS)], overdue_at=now, limit=50
            )
            overdue.append((time.perf_counter() - began) * 1000)
        print(
            f"worklist, overdue filter                    p50 {percentile(overdue, 50):6.1f} ms"
            f"   p99 {percentile(overdue, 99):6.1f} ms"
        )

        http: list[float] = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
                for i in range(args.queries // 2):
                    unit = UNITS[i % len(UNITS)]
                    token = issuer.mint("bench", ["officer"], unit)
                    began = time.perf_counter()
                    answer = await client.get(
                        "/api/v1/cases", headers={"Authorization": f"Bearer {token}"}
                    )
                    http.append((time.perf_counter() - began) * 1000)
                    answer.raise_for_status()
        print(
            f"worklist through HTTP (auth, page of 50)    p50 {percentile(http, 50):6.1f} ms"
            f"   p99 {percentile(http, 99):6.1f} ms"
        )
        print(f"  (mean {statistics.mean(http):.1f} ms; target p99 <= 50 ms)")
    finally:
        await mongo.drop_database(database)
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--kafka", default=os.environ.get("DVC_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    parser.add_argument(
        "--mongo", default=os.environ.get("DVC_TEST_MONGO_URL", "mongodb://127.0.0.1:37017/")
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip", choices=["throughput", "worklist", "deadlines"], action="append")
    args = parser.parse_args()
    skip = set(args.skip or ())
    print(f"Python {sys.version.split()[0]}; Kafka {args.kafka}; MongoDB protocol {args.mongo}")
    if "throughput" not in skip:
        print("-- input events through processing (target >= 1,000/s sustained)")
        asyncio.run(throughput(args))
    if "worklist" not in skip:
        print(f"-- worklist with {args.cases:,} open cases (target p99 <= 50 ms)")
        asyncio.run(worklist(args))
    if "deadlines" not in skip:
        print("-- deadline engine (bench/bench_deadlines.py; target >= 50,000/s)")
        script = Path(__file__).with_name("bench_deadlines.py")
        subprocess.run([sys.executable, str(script)], check=False)


if __name__ == "__main__":
    main()

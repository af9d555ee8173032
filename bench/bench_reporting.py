"""Reporting rebuild throughput and quarterly-report query time at growing event counts.

Run (the test-profile servers, started by `.venv/bin/python -m devstack --profile test up`):
    .venv/bin/python bench/bench_reporting.py [--steps 300,1500]

For each step, more dossier events (a submission and two processing steps per dossier, spread
over 4 quarters and 6 units) are published to isolated topics, then:
- the rebuild (`services.reporting.rebuild`) replays every event from the start: events/s;
- the quarterly report (counters of one quarter + the catalogue copy, assembled as the API does)
  is queried from the rebuilt set: p50/p99 over --queries runs.
Prints figures only; there is no target in the issue beyond reporting them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from services.reporting.adapters.store import ReportingStore
from services.reporting.domain.report import build_report
from services.reporting.rebuild import rebuild
from services.reporting.settings import ReportingSettings
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import wrap
from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DossierProcessed,
    DossierSubmitted,
)
from shared.contracts.topics import platform_topics
from shared.runtime.kafka import ensure_topics
from shared.runtime.mongo import create_mongo_client

UNITS = [f"U{n:02d}" for n in range(6)]
START = datetime(2025, 1, 10, 3, 0, tzinfo=UTC)


def dossier_events(n: int) -> list[Any]:
    unit = UNITS[n % len(UNITS)]
    code = f"000.00.21.{unit}-{250110 + n // 10000:06d}-{n % 10000:04d}"
    at = START + timedelta(days=(n * 7) % 360)
    common = {"dossier_code": code, "procedure_code": f"P{n % 12}", "unit_code": unit}
    return [
        DossierSubmitted(
            **common,
            occurred_at=at,
            level=3 + n % 2,
            channel=Channel.ONLINE if n % 3 else Channel.COUNTER,
            applicant=Applicant(
                kind=ApplicantKind.PERSON, name="Nguyễn Văn A", identifier="001203004567"
            ),
            contact=Contact(email="a@example.vn"),
            fee_vnd=0,
        ),
        DossierProcessed(
            **common,
            occurred_at=at + timedelta(hours=1),
            action="receive",
            state=2,
            previous_state=1,
            actor="o",
            due_at=at + timedelta(days=5),
        ),
        DossierProcessed(
            **common,
            occurred_at=at + timedelta(days=2 + n % 6),
            action="issue_result",
            state=9,
            previous_state=2,
            actor="o",
        ),
    ]


async def run(args: argparse.Namespace) -> None:
    token = uuid.uuid4().hex[:8]
    settings = ReportingSettings(
        kafka_bootstrap=args.kafka,
        mongo_url=args.mongo,
        mongo_database=f"bench_reporting_{token}",
        topic_suffix=f".bench{token}",
    )
    await ensure_topics(args.kafka, platform_topics(partitions=3, suffix=settings.topic_suffix))
    producer = AIOKafkaProducer(bootstrap_servers=args.kafka, acks="all", linger_ms=5)
    mongo = create_mongo_client(args.mongo)
    db = mongo[settings.database_name]
    await producer.start()

    async def send(model: Any) -> None:
        record = wrap(model, "/bench").to_kafka()
        await producer.send(
            settings.topic(model.topic), record.value, key=record.key, headers=record.headers
        )

    try:
        for p in range(12):
            await send(
                Procedure(
                    code=f"P{p}",
                    name=f"Thủ tục {p}",
                    unit_code=UNITS[p % 6],
                    unit_name="Vụ",
                    field="f",
                    level=3,
                )
            )
        dossiers = 0
        print(f"{'events':>8} {'rebuild ev/s':>13} {'report p50 ms':>14} {'report p99 ms':>14}")
        for target in (int(s) for s in args.steps.split(",")):
            while dossiers * 3 < target:
                for event in dossier_events(dossiers):
                    await send(event)
                dossiers += 1
            await producer.flush()
            result = await rebuild(settings, db, pointer_ttl=0.0)
            store = ReportingStore(db, result.prefix)
            timings = []
            for _ in range(args.queries):
                began = time.perf_counter()
                rows = await store.counters_for(["2025-Q2"])
                build_report(["2025-Q2"], rows, await store.all_procedures())
                timings.append((time.perf_counter() - began) * 1000)
            p99 = statistics.quantiles(timings, n=100)[98]
            print(
                f"{result.events:>8} {result.events_per_second:>13.0f} "
                f"{statistics.median(timings):>14.2f} {p99:>14.2f}"
            )
    finally:
        await producer.stop()
        await mongo.drop_database(settings.database_name)
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:37017/")
    parser.add_argument("--steps", default="300,1500")
    parser.add_argument("--queries", type=int, default=50)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

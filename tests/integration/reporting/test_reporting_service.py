"""The reporting service against the real broker and database: a scripted mix of dossier events
(`tests.unit.reporting.scenario`) gives exact report figures, and redelivering every event
changes nothing."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.reporting.main import create_app
from services.reporting.settings import ReportingSettings
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.topics import DOSSIER_TOPICS, REPORTING_GROUP, SUBSCRIPTIONS
from shared.runtime.auth import DevIssuer
from shared.runtime.kafka import create_broker, publish_cloud_event
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics, serve
from tests.unit.reporting.scenario import EXPECTED_MINISTRY, T0, script


@pytest.fixture(scope="module")
async def reporting(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Any, ReportingSettings, DevIssuer]]:
    token = uuid.uuid4().hex[:10]
    issuer = DevIssuer(Path(tmp_path_factory.mktemp("issuer")))
    settings = ReportingSettings(
        environment="test",
        kafka_bootstrap=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"test_reporting_{token}",
        topic_suffix=f".{token}",
        jwt_public_key_file=str(issuer.public_key_path),
        metrics_refresh_seconds=0.2,
        **QUICK_CONSUMERS,
    )
    await create_suffixed_topics(kafka_bootstrap, settings.topic_suffix)
    app = create_app(settings)
    async with serve(app) as client:
        yield client, settings, issuer
    from pymongo import MongoClient

    with MongoClient(mongo_url) as mongo:
        mongo.drop_database(settings.mongo_database)


def auth(issuer: DevIssuer, role: str, unit: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint('u1', [role], unit, name='Lãnh đạo')}"}


async def publish_all(settings: ReportingSettings, events: list[CloudEvent]) -> None:
    broker = create_broker(settings.kafka_bootstrap, "reporting-test")
    await broker.start()
    try:
        for model, cloud_event in events:
            await publish_cloud_event(broker, settings.topic(model.topic), cloud_event)
    finally:
        await broker.stop()


async def wait_consumed(settings: ReportingSettings, limit_seconds: float = 20) -> None:
    """Until the reporting group has committed every record of its topics."""
    topics = [settings.topic(t) for t in SUBSCRIPTIONS[REPORTING_GROUP]]
    group = settings.consumer_group(REPORTING_GROUP)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        parts = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        assert len(parts) == 3 * len(DOSSIER_TOPICS) + 1
        ends = await consumer.end_offsets(parts)
        deadline = asyncio.get_running_loop().time() + limit_seconds
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            if all(
                ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
                for tp in parts
            ):
                return
            assert asyncio.get_running_loop().time() < deadline, "reporting did not catch up"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
        await consumer.stop()


async def test_report_figures_are_exact_and_redelivery_changes_nothing(reporting: Any) -> None:
    client, settings, issuer = reporting
    events = [
        (m, wrap(m, "/test", time=T0 if isinstance(m, Procedure) else None)) for m in script()
    ]
    await publish_all(settings, events)
    await wait_consumed(settings)

    admin = auth(issuer, "admin")
    response = await client.get("/api/v1/reports/quarterly?year=2026&quarter=1", headers=admin)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ministry"]["counts"] == EXPECTED_MINISTRY
    units = {u["unit_code"]: u for u in report["units"]}
    assert units["G12"]["counts"]["received"] == 4
    assert units["H56"]["counts"]["withdrawn"] == 1
    assert units["H56"]["counts"]["in_progress_overdue"] == 1
    indicators = {i["code"]: i for i in report["ministry"]["indicators"]}
    # (0 early + 1 on time + 2 in progress - 1 overdue) / (2 finished + 2 in progress)
    assert (indicators["on_time_rate"]["numerator"], indicators["on_time_rate"]["denominator"]) == (
        2,
        4,
    )
    assert indicators["online_rate"]["percent"] == 50.0
    assert indicators["online_payment_rate"]["percent"] == 100.0
    assert indicators["digitisation_rate"]["percent"] == 50.0
    # One rating of 5 (satisfied) and one of 2 (not yet satisfied).
    satisfaction = indicators["satisfaction_rate"]
    assert (satisfaction["numerator"], satisfaction["denominator"]) == (1, 2)
    assert satisfaction["percent"] == 50.0
    assert all(i["formula"] for i in indicators.values())
    catalogue = report["catalogue"]
    assert catalogue["by_level"] == {"1": 0, "2": 1, "3": 1, "4": 1}
    assert catalogue["level4_share"] == 0.5
    assert [(c["code"], c["received"]) for c in catalogue["upgrade_candidates"]] == [
        ("P2", 2),
        ("P3", 2),
    ]
    # Another quarter is empty.
    other = await client.get("/api/v1/reports/quarterly?year=2026&quarter=2", headers=admin)
    assert other.json()["ministry"]["counts"]["received"] == 0

    # Redeliver every event (same ids): the figures stay the same.
    await publish_all(settings, events)
    await wait_consumed(settings)
    again = await client.get("/api/v1/reports/quarterly?year=2026&quarter=1", headers=admin)
    assert again.json()["ministry"]["counts"] == EXPECTED_MINISTRY

    # The public figures: anonymous, cacheable, the ratings counted once despite redelivery.
    public = await client.get("/api/v1/public/figures?year=2026")
    assert public.status_code == 200, public.text
    assert public.headers["cache-control"] == "public, max-age=300"
    ministry = public.json()["ministry"]
    assert (ministry["received"], ministry["online_percent"]) == (6, 50.0)
    assert (ministry["rated"], ministry["satisfaction_percent"]) == (2, 50.0)
    assert ministry["average_score"] == 3.5 and ministry["level4"]["meets_target"] is True
    units = {u["unit_code"]: u for u in public.json()["units"]}
    assert units["G12"]["rated"] == 1 and units["H56"]["rated"] == 1
    public_csv = await client.get("/api/v1/public/figures.csv?year=2026")
    assert public_csv.text.splitlines()[1].startswith("ministry,")

    # A date range rolls into quarters; CSV and HTML carry the same figures.
    ranged = await client.get(
        "/api/v1/reports/quarterly.csv?from=2025-12-01&to=2026-02-01", headers=admin
    )
    rows = list(csv.DictReader(io.StringIO(ranged.text)))
    assert rows[0]["scope"] == "ministry" and rows[0]["quarters"] == "2025-Q4 2026-Q1"
    assert int(rows[0]["received"]) == 6 and rows[0]["on_time_rate"] == "50.00"
    html = await client.get(
        "/api/v1/reports/quarterly?year=2026&quarter=1&format=html", headers=admin
    )
    assert html.status_code == 200 and "Tỷ lệ hồ sơ trực tuyến" in html.text and "<svg" in html.text

    # Business metrics come from the same read model.
    async def metrics_ready() -> str:
        for _ in range(100):
            text = (await client.get("/metrics")).text
            if 'dvc_reporting_open_dossiers{unit="H56"} 1.0' in text:
                return text
            await asyncio.sleep(0.1)
        raise AssertionError("metrics not refreshed")

    text = await metrics_ready()
    assert "dvc_catalogue_level4_share 0.5" in text
    assert 'dvc_reporting_notification_failures{unit="G12"} 1.0' in text

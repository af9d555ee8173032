"""A processing service on the real broker and database, isolated by topic suffix, consumer group
and database name, with its lifespan running (consumers, outbox relay) and an HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from services.processing.main import create_app
from services.processing.service.cases import ProcessingService
from services.processing.settings import ProcessingSettings
from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import DossierEvent
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
from shared.runtime.kafka import create_broker, ensure_topics, publish_cloud_event
from shared.runtime.mongo import create_mongo_client
from tests.service_harness import QUICK_CONSUMERS

CONSUMED = (
    CATALOGUE_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    DOSSIER_SUPPLEMENTED_TOPIC,
    DOSSIER_WITHDRAWN_TOPIC,
    DOSSIER_PAID_TOPIC,
)


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: ProcessingSettings
    issuer: DevIssuer
    producer: KafkaBroker
    processing: ProcessingService

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def dead_letters(self, name: str) -> str:
        return dead_letter_topic(self.topic(name), PROCESSING_GROUP)

    def token(self, subject: str, role: str, unit: str | None = "G12") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.mint(subject, [role], unit)}"}

    async def publish(self, model: Any, event_id: str | None = None) -> CloudEvent:
        event = wrap(model, "/test/intake", event_id=event_id)
        await publish_cloud_event(self.producer, self.topic(model.topic), event)
        return event

    async def republish(self, model: DossierEvent, event: CloudEvent) -> None:
        await publish_cloud_event(self.producer, self.topic(model.topic), event)


async def wait_for(
    condition: Callable[[], Awaitable[Any]], within: float = 20.0, what: str = "condition"
) -> Any:
    """Poll `condition` until it returns something truthy (no fixed sleeps)."""
    async with asyncio.timeout(within):
        while True:
            result = await condition()
            if result:
                return result
            await asyncio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover


@pytest.fixture
async def serial_db(mongo_url: str, mongo_db: Any) -> AsyncIterator[Any]:
    """`mongo_db` through a client with one connection (see `_one_connection`)."""
    client = create_mongo_client(_one_connection(mongo_url))
    yield client[mongo_db.name]
    await client.close()


@pytest.fixture
async def service(
    kafka_bootstrap: str, mongo_url: str, mongo_db: Any, unique: str, tmp_path: Path
) -> AsyncIterator[Service]:
    suffix = f".{unique}"
    specs = [
        TopicSpec(f"{name}{suffix}", 1 if name == CATALOGUE_TOPIC else 3, None)
        for name in (*CONSUMED, DOSSIER_PROCESSED_TOPIC)
    ]
    specs += [
        TopicSpec(dead_letter_topic(f"{t}{suffix}", PROCESSING_GROUP), 1, None) for t in CONSUMED
    ]
    await ensure_topics(kafka_bootstrap, specs)
    issuer = DevIssuer(tmp_path / "issuer")
    settings = ProcessingSettings(
        kafka_bootstrap=kafka_bootstrap,
        # FerretDB 1.24 (SQLite) applies concurrent updates from different connections without
        # atomicity (lost updates, a compare-and-set "succeeding" twice); one connection
        # serialises this client's writes. MongoDB needs no such option.
        mongo_url=_one_connection(mongo_url),
        mongo_database=mongo_db.name,
        topic_suffix=suffix,
        environment="test",
        jwt_public_key_file=str(issuer.public_key_path),
        consumer_max_attempts=2,
        consumer_backoff_seconds=0.05,
        unknown_procedure_wait_seconds=1.0,
        outbox_poll_seconds=0.1,
        scanner_enabled=False,
        metrics_refresh_seconds=0.5,
        **QUICK_CONSUMERS,
    )
    app = create_app(settings)
    producer = create_broker(kafka_bootstrap, "test-intake")
    async with producer:
        await producer.connect()
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://processing"
            ) as client:
                yield Service(app, client, settings, issuer, producer, app.state.processing.service)


def _one_connection(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "maxPoolSize=1"

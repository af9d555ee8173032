"""The notification service in-process against the real broker and database, with a real local
SMTP server and a real local HTTP SMS gateway; isolated by topic suffix, group and database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.notification.citizens.domain.signature import sign
from services.notification.main import create_app
from services.notification.settings import NotificationSettings
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.topics import (
    DOSSIER_NOTIFIED_TOPIC,
    DOSSIER_PROCESSED_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    NOTIFICATION_GROUP,
    dead_letter_topic,
)
from shared.runtime.auth import DevIssuer
from tests.integration.notification.servers import SmsGateway, SmtpServer
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics

T = TypeVar("T")
RECEIPT_SECRET = "test-receipt-secret"


async def eventually(
    check: Callable[[], Awaitable[T]], within: float = 15.0, interval: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    last: Any = None
    try:
        async with asyncio.timeout(within):
            while not (last := await check()):  # noqa: ASYNC110 (the state is in other processes)
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"condition not met within {within}s (last: {last!r})") from None
    return last


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sms_gateway() -> Iterator[SmsGateway]:
    gateway = SmsGateway()
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def dev_issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path / "issuer")


@dataclass
class Topics:
    submitted: str
    processed: str
    notified: str
    submitted_dlq: str


@pytest.fixture
async def settings(
    kafka_bootstrap: str,
    mongo_url: str,
    mongo_client: Any,
    unique: str,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
    dev_issuer: DevIssuer,
) -> AsyncIterator[NotificationSettings]:
    settings = NotificationSettings(
        environment="test",
        kafka_bootstrap=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"test_notification_{unique}",
        topic_suffix=f".{unique}",
        consumer_max_attempts=2,
        consumer_backoff_seconds=0.05,
        jwt_public_key_file=str(dev_issuer.public_key_path),
        smtp_port=smtp_server.port,
        sms_gateway_url=sms_gateway.url,
        sms_timeout_seconds=0.5,
        sms_receipt_secret=RECEIPT_SECRET,
        delivery_max_attempts=3,
        delivery_backoff_seconds=0.05,
        delivery_backoff_max_seconds=0.2,
        delivery_poll_seconds=0.05,
        outbox_poll_seconds=0.05,
        breaker_failure_threshold=3,
        breaker_reset_seconds=0.5,
        **QUICK_CONSUMERS,
    )
    await create_suffixed_topics(kafka_bootstrap, settings.topic_suffix)
    yield settings
    await mongo_client.drop_database(settings.mongo_database)


@pytest.fixture
def topics(settings: NotificationSettings) -> Topics:
    submitted = settings.topic(DOSSIER_SUBMITTED_TOPIC)
    return Topics(
        submitted=submitted,
        processed=settings.topic(DOSSIER_PROCESSED_TOPIC),
        notified=settings.topic(DOSSIER_NOTIFIED_TOPIC),
        submitted_dlq=dead_letter_topic(submitted, NOTIFICATION_GROUP),
    )


@asynccontextmanager
async def running(
    settings: NotificationSettings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service with its lifespan (consumer, workers, relay) and an HTTP client to it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notification") as c:
            yield app, c


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def publish(producer: AIOKafkaProducer, topic: str, event: CloudEvent) -> None:
    record = event.to_kafka()
    await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)


def signed_receipt(body: bytes, *, secret: str = RECEIPT_SECRET, at: float | None = None) -> dict:
    timestamp = str(int(at if at is not None else time.time()))
    return {
        "X-Timestamp": timestamp,
        "X-Signature": sign(secret.encode(), timestamp, body),
        "Content-Type": "application/json",
    }


@pytest.fixture
def hooks_settings(settings: NotificationSettings) -> NotificationSettings:
    return settings.model_copy(
        update={
            "webhook_allow_private_urls": True,  # local receivers, plain http
            "webhook_retry_schedule_seconds": [0.1, 0.1, 0.1],
            "webhook_timeout_seconds": 0.5,
            "webhook_breaker_failures": 50,
            "webhook_breaker_probe_seconds": 0.5,
            "webhook_refresh_seconds": 0.2,
        }
    )

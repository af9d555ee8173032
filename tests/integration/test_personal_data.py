"""Personal data through the running services, on the real broker (issue 14, Decree 13/2023).

1. A malformed event carrying a phone number and a citizen ID, pushed through every consumer,
   leaves neither in the logs nor in the dead-letter headers (`shared.runtime.failures.describe` and
   `mask_personal`). Every service runs in-process with the production log formatter
   (`configure_logging`); each consumer group that reads the topic dead-letters the record:
   intake (processed), processing (submitted), notification's citizen messages, public stream
   and portal synchronisation (submitted, processed), its webhook deliveries (public status) and
   reporting (all).
2. Of a valid submitted dossier, processing and reporting store no identifier or contact.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.intake.main import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.notification.main import create_app as create_notification
from services.notification.settings import NotificationSettings
from services.processing.main import create_app as create_processing
from services.processing.settings import ProcessingSettings
from services.reporting.main import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import DossierProcessed, DossierSubmitted, PublicDossierStatus
from shared.contracts.topics import (
    DOSSIER_PROCESSED_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    PUBLIC_DOSSIER_STATUS_TOPIC,
    SUBSCRIPTIONS,
    dead_letter_topic,
)
from shared.runtime.auth import DevIssuer
from shared.runtime.logging import configure_logging
from tests.factories import dossier_code
from tests.kafka_helpers import read_until
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics, serve

CCCD = "001303004567"
PHONE = "0912345678"
# As they may also appear once formatted (grouped digits, an international prefix).
FORMS = (CCCD, PHONE, "912345678", "0912 345 678", "+84912345678")

MALFORMED = {
    DOSSIER_SUBMITTED_TOPIC: (
        DossierSubmitted.event_type,
        {
            "dossier_code": dossier_code(77),
            "occurred_at": PHONE,  # not a date: pydantic quotes the input
            "procedure_code": "1.004940",
            "unit_code": ["SHTT", PHONE],
            "level": 4,
            "channel": CCCD,  # not a channel
            "applicant": {"kind": "person", "name": "Nguyễn Thị Lan", "identifier": CCCD},
            "contact": {"phone": PHONE, "email": "lan@example.vn"},
        },
    ),
    DOSSIER_PROCESSED_TOPIC: (
        DossierProcessed.event_type,
        {
            "dossier_code": dossier_code(77),
            "occurred_at": PHONE,
            "procedure_code": "1.004940",
            "unit_code": "SHTT",
            "action": f"call {PHONE}",
            "state": CCCD,
            "note": f"Gọi {PHONE}, CCCD {CCCD}",
        },
    ),
    PUBLIC_DOSSIER_STATUS_TOPIC: (
        PublicDossierStatus.event_type,
        {
            "dossier_code": dossier_code(77),
            "occurred_at": PHONE,
            "procedure_code": "1.004940",
            "unit_code": CCCD,
            "state": CCCD,
            "action": {"phone": PHONE},
        },
    ),
}


def readers(topic: str) -> list[str]:
    return [group for group, topics in SUBSCRIPTIONS.items() if topic in topics]


@contextmanager
def production_logs() -> Iterator[io.StringIO]:
    """The services' JSON log lines, as `configure_logging` writes them, into a buffer."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    configure_logging("test", "INFO")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


@asynccontextmanager
async def running_services(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> AsyncIterator[str]:
    """Every service's consumers running on one fresh set of topics; yields the suffix."""
    token = uuid.uuid4().hex[:10]
    suffix = f".{token}"
    issuer = DevIssuer(tmp_path / "issuer")
    common: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": kafka_bootstrap,
        "mongo_url": mongo_url,
        "topic_suffix": suffix,
        "jwt_public_key_file": str(issuer.public_key_path),
        "consumer_max_attempts": 2,
        "consumer_backoff_seconds": 0.05,
        **QUICK_CONSUMERS,
    }
    apps = [
        create_intake(
            IntakeSettings(
                **common,
                mongo_database=f"test_pii_intake_{token}",
                public_base_url="https://dichvucong.most.gov.vn",
                relay_poll_seconds=0.2,
            )
        ),
        create_processing(
            ProcessingSettings(
                **common,
                mongo_database=f"test_pii_processing_{token}",
                scanner_enabled=False,
                unknown_procedure_wait_seconds=0.5,
            )
        ),
        create_notification(
            NotificationSettings(
                **common,
                mongo_database=f"test_pii_notification_{token}",
                portal_enabled=True,  # its consumer group (nothing reaches the portal itself)
            )
        ),
        create_reporting(ReportingSettings(**common, mongo_database=f"test_pii_reporting_{token}")),
    ]
    await create_suffixed_topics(kafka_bootstrap, suffix)
    try:
        async with AsyncExitStack() as stack:
            for app in apps:
                await stack.enter_async_context(serve(app))
            yield suffix
    finally:
        from pymongo import MongoClient

        with MongoClient(mongo_url) as mongo:
            for service in ("intake", "processing", "notification", "reporting"):
                mongo.drop_database(f"test_pii_{service}_{token}")


async def publish_malformed(bootstrap: str, suffix: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, (event_type, data) in MALFORMED.items():
            record = CloudEvent(
                id=str(uuid.uuid4()),
                type=event_type,
                source="/test/personal-data",
                subject=dossier_code(77),
                time=datetime.now(UTC),
                data=json.dumps(data, ensure_ascii=False).encode(),
            ).to_kafka()
            await producer.send_and_wait(
                topic + suffix, record.value, key=record.key, headers=record.headers
            )
    finally:
        await producer.stop()


@pytest.mark.timeout(240)
async def test_no_phone_or_citizen_id_in_logs_or_dead_letter_headers(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    with production_logs() as logs:
        async with AsyncExitStack() as stack:
            suffix = await stack.enter_async_context(
                running_services(kafka_bootstrap, mongo_url, tmp_path)
            )
            await publish_malformed(kafka_bootstrap, suffix)
            dead_letters = {
                dead_letter_topic(topic + suffix, group): topic
                for topic in MALFORMED
                for group in readers(topic)
            }
            found = await asyncio.gather(
                *(read_until(kafka_bootstrap, name, bool, timeout=90) for name in dead_letters),
                return_exceptions=True,
            )
            missing = [n for n, r in zip(dead_letters, found, strict=True) if not _one(r)]
            assert not missing, f"no dead letter in {missing}:\n{logs.getvalue()[-4000:]}"
            headers = {
                name: {k: v.decode(errors="replace") for k, v in records[0].headers}
                for name, records in zip(dead_letters, found, strict=True)
                if isinstance(records, list)
            }
        await asyncio.sleep(0)  # let the last log lines of the shutdown through

    # Every consumer refused the event as malformed and said why (without the values).
    assert len(headers) == 11, sorted(headers)
    for name, found in headers.items():
        assert found["dlq_reason"] == "malformed", (name, found)
        assert found["dlq_error"], name
        for value in FORMS:
            assert value not in json.dumps(found, ensure_ascii=False), (name, value, found)
    text = logs.getvalue()
    assert "dlq" in text  # the dead letters were logged
    for value in FORMS:
        assert value not in text, f"{value} in the logs:\n" + "\n".join(
            line for line in text.splitlines() if value in line
        )


def _one(records: object) -> bool:
    return isinstance(records, list) and len(records) == 1


async def everything_in(db: Any) -> str:
    """Every document of every collection of `db`, as text."""
    documents = []
    for name in await db.list_collection_names():
        documents.extend([d async for d in db[name].find({})])
    return json.dumps(documents, default=str, ensure_ascii=False)


@pytest.mark.timeout(240)
async def test_processing_and_reporting_store_no_identifier_or_contact(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    """Issue 14 (Decree 13/2023, minimisation): of a submitted dossier, processing keeps the
    applicant's display name for the officers' worklist, reporting nothing personal; neither
    keeps the ID, the phone, the e-mail or the form (an address)."""
    from pymongo import AsyncMongoClient

    from shared.contracts.cloudevents import wrap
    from shared.contracts.events import Applicant, ApplicantKind, Channel, Contact

    email, address = "lan.nguyen@example.vn", "12 Trần Hưng Đạo, Hà Nội"
    event = DossierSubmitted(
        dossier_code=dossier_code(78),
        occurred_at=datetime.now(UTC),
        procedure_code="1.004940",
        unit_code="SHTT",
        level=4,
        channel=Channel.ONLINE,
        applicant=Applicant(kind=ApplicantKind.PERSON, name="Nguyễn Thị Lan", identifier=CCCD),
        contact=Contact(email=email, phone=PHONE),
        form={"dia_chi": address, "so_dien_thoai": PHONE},
    )
    async with running_services(kafka_bootstrap, mongo_url, tmp_path) as suffix:
        token = suffix.lstrip(".")
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
        try:
            processing = client[f"test_pii_processing_{token}"]
            reporting = client[f"test_pii_reporting_{token}"]
            # Processing has the procedure from intake's catalogue (read by its own consumer)
            # before the dossier comes: it waits only half a second for one it does not know.
            async with asyncio.timeout(60):
                while not await processing["procedures"].find_one({"_id": "1.004940"}):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
            await producer.start()
            try:
                record = wrap(event, "/test/intake").to_kafka()
                await producer.send_and_wait(
                    DOSSIER_SUBMITTED_TOPIC + suffix, record.value, key=record.key,
                    headers=record.headers,
                )  # fmt: skip
            finally:
                await producer.stop()
            async with asyncio.timeout(60):
                while not (  # noqa: ASYNC110 (the state is in other services' databases)
                    await processing["cases"].find_one({"_id": event.dossier_code})
                    and await reporting["dossiers"].find_one({"_id": event.dossier_code})
                ):
                    await asyncio.sleep(0.2)
            stored = {"processing": await everything_in(processing)}
            stored["reporting"] = await everything_in(reporting)
        finally:
            await client.close()
    assert "Nguyễn Thị Lan" in stored["processing"]  # the worklist's display name
    for service, text in stored.items():
        for value in (CCCD, PHONE, email, address):
            assert value not in text, (service, value)
    assert "Nguyễn Thị Lan" not in stored["reporting"]

"""Public dossier steps published straight onto the (suffixed) public topic, for webhook tests."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from services.notification.settings import NotificationSettings
from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import DossierState, PublicDossierStatus
from shared.contracts.topics import PUBLIC_DOSSIER_STATUS_TOPIC
from tests.integration.notification.conftest import publish

STEPS = [
    ("submit", DossierState.SUBMITTED),
    ("receive", DossierState.RECEIVED),
    ("start_processing", DossierState.IN_PROCESSING),
]


def public_event(code: str, action: str, state: DossierState, unit: str = "G12") -> CloudEvent:
    return wrap(
        PublicDossierStatus(
            dossier_code=code,
            occurred_at=datetime.now(UTC),
            procedure_code="1.004473",
            unit_code=unit,
            state=state,
            action=action,
        ),
        "/dvc/notification/public-stream",
    )


async def publish_steps(
    producer: AIOKafkaProducer, settings: NotificationSettings, codes: list[str], unit: str = "G12"
) -> list[CloudEvent]:
    """The three first steps of each dossier, step by step across the dossiers."""
    topic = settings.topic(PUBLIC_DOSSIER_STATUS_TOPIC)
    events = []
    for action, state in STEPS:
        for code in codes:
            event = public_event(code, action, state, unit)
            await publish(producer, topic, event)
            events.append(event)
    return events

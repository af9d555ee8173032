"""Subscriptions of the citizen messages: the receipt on submission, a message per step."""

from __future__ import annotations

from services.notification.citizens.service import CitizenMessages
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import DossierProcessed, DossierSubmitted
from shared.contracts.topics import NOTIFICATION_GROUP
from shared.runtime.service import ServiceContext, subscribe_dossier_events


def subscribe(context: ServiceContext, messages: CitizenMessages) -> None:
    """Subscribe the notification group to the submitted and processed topics."""

    async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        await messages.dossier_submitted(event, cloud_event.id)

    async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
        await messages.dossier_processed(event, cloud_event.id)

    subscribe_dossier_events(
        context,
        group=NOTIFICATION_GROUP,
        handlers={DossierSubmitted: on_submitted, DossierProcessed: on_processed},
    )

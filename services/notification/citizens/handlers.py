"""Subscriptions of the citizen messages: the receipt on submission, a message per step.

The group reads in batches (`consume_dossier_events_in_batches`): each dossier's events in order,
different dossiers concurrently, since each event waits on a few database round trips and the
messages of different dossiers do not depend on each other.
"""

from __future__ import annotations

from services.notification.citizens.service import CitizenMessages
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import DossierProcessed, DossierSubmitted
from shared.contracts.topics import NOTIFICATION_GROUP
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.service import ServiceContext, consume_dossier_events_in_batches


def consumer(context: ServiceContext, messages: CitizenMessages) -> BatchConsumer:
    """The notification group's consumer of the submitted and processed topics (started by the
    service's lifecycle)."""

    async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        await messages.dossier_submitted(event, cloud_event.id)

    async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
        await messages.dossier_processed(event, cloud_event.id)

    return consume_dossier_events_in_batches(
        context,
        group=NOTIFICATION_GROUP,
        handlers={DossierSubmitted: on_submitted, DossierProcessed: on_processed},
    )

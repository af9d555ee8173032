"""Subscriptions of the processing service: the catalogue copy and the applicants' dossier events.

Two consumers in the processing group: the catalogue has its own (a FastStream subscriber), so
that a submitted dossier waiting for its procedure (start-up: the catalogue topic not read yet)
does not block the very consumer that would bring the procedure in. The dossier events are read
in batches (`consume_dossier_events_in_batches`): each dossier's events in order, different
dossiers at the same time, so that the cases opened together share one insert and a dossier
waiting for its procedure holds up only itself. Both get the shared retries and dead-letter
topics. Each handler takes one event type and delegates to the service layer
(`service/cases.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.processing.service.cases import ProcessingService
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import (
    DossierPaid,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.contracts.topics import PROCESSING_GROUP
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.service import (
    ServiceContext,
    consume_dossier_events_in_batches,
    subscribe_dossier_events,
)


@dataclass(frozen=True)
class Subscribers:
    cases: ProcessingService

    async def on_procedure(self, event: Procedure, cloud_event: CloudEvent) -> None:
        await self.cases.on_procedure(event)

    async def on_submitted(self, event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        await self.cases.open_case(event, cloud_event.id)

    async def on_supplemented(self, event: DossierSupplemented, cloud_event: CloudEvent) -> None:
        await self.cases.supplemented(event, cloud_event.id)

    async def on_withdrawn(self, event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
        await self.cases.withdrawn(event, cloud_event.id)

    async def on_paid(self, event: DossierPaid, cloud_event: CloudEvent) -> None:
        await self.cases.paid(event, cloud_event.id)


def register(context: ServiceContext, cases: ProcessingService) -> BatchConsumer:
    """Subscribe to the catalogue; the dossier events' consumer, started by the lifecycle."""
    group = PROCESSING_GROUP  # isolated runs get `<group><topic suffix>` (ServiceSettings)
    subscribers = Subscribers(cases)
    subscribe_dossier_events(context, group=group, handlers={Procedure: subscribers.on_procedure})
    return consume_dossier_events_in_batches(
        context,
        group=group,
        handlers={
            DossierSubmitted: subscribers.on_submitted,
            DossierSupplemented: subscribers.on_supplemented,
            DossierWithdrawn: subscribers.on_withdrawn,
            DossierPaid: subscribers.on_paid,
        },
    )

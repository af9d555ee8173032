"""Subscriptions of the processing service: the catalogue copy and the applicants' dossier events.

Two consumers in the processing group: the catalogue has its own, so that a submitted dossier
waiting for its procedure (start-up: the catalogue topic not read yet) does not block the very
consumer that would bring the procedure in. Both get the shared retries and dead-letter topics.
"""

from __future__ import annotations

import logging

from services.processing.runtime import ProcessingRuntime
from shared.catalogue import Procedure
from shared.cloudevents import CloudEvent
from shared.events import DossierPaid, DossierSubmitted, DossierSupplemented, DossierWithdrawn
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import PROCESSING_GROUP

log = logging.getLogger(__name__)


def register(context: ServiceContext, runtime: ProcessingRuntime) -> None:
    group = PROCESSING_GROUP  # isolated runs get `<group><topic suffix>` (ServiceSettings)

    async def on_procedure(event: Procedure, cloud_event: CloudEvent) -> None:
        await runtime.on_procedure(event)

    async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        await runtime.open_case(event, cloud_event.id)

    async def on_supplemented(event: DossierSupplemented, cloud_event: CloudEvent) -> None:
        change = runtime.supplement(event.occurred_at, event.note)
        await runtime.apply_event(event.dossier_code, cloud_event.id, "supplemented", change)

    async def on_withdrawn(event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
        change = runtime.withdrawal(event.occurred_at, event.reason)
        await runtime.apply_event(event.dossier_code, cloud_event.id, "withdrawn", change)

    async def on_paid(event: DossierPaid, cloud_event: CloudEvent) -> None:
        await runtime.apply_event(
            event.dossier_code, cloud_event.id, "paid", runtime.payment(event)
        )

    subscribe_dossier_events(context, group=group, handlers={Procedure: on_procedure})
    subscribe_dossier_events(
        context,
        group=group,
        handlers={
            DossierSubmitted: on_submitted,
            DossierSupplemented: on_supplemented,
            DossierWithdrawn: on_withdrawn,
            DossierPaid: on_paid,
        },
    )

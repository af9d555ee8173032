"""Subscriptions of the national-portal sync (their own consumer group): every dossier event's
facts are recorded for the portal, read in batches (`consume_dossier_events_in_batches`: each
dossier's events in order, different dossiers concurrently)."""

from __future__ import annotations

from services.notification.portal.service import PortalSync
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import (
    DossierEvent,
    DossierPaid,
    DossierProcessed,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.contracts.topics import PORTAL_GROUP
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.consumer import EventHandler
from shared.runtime.service import ServiceContext, consume_dossier_events_in_batches


def portal_handlers(sync: PortalSync) -> dict[type[DossierEvent], EventHandler]:
    """One subscriber per dossier event, each delegating to the sync."""

    async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        await sync.dossier_submitted(event, cloud_event.id)

    async def on_supplemented(event: DossierSupplemented, cloud_event: CloudEvent) -> None:
        await sync.dossier_supplemented(event, cloud_event.id)

    async def on_withdrawn(event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
        await sync.dossier_withdrawn(event, cloud_event.id)

    async def on_paid(event: DossierPaid, cloud_event: CloudEvent) -> None:
        await sync.dossier_paid(event, cloud_event.id)

    async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
        await sync.dossier_processed(event, cloud_event.id)

    return {
        DossierSubmitted: on_submitted,
        DossierSupplemented: on_supplemented,
        DossierWithdrawn: on_withdrawn,
        DossierPaid: on_paid,
        DossierProcessed: on_processed,
    }


def consumer(context: ServiceContext, sync: PortalSync) -> BatchConsumer:
    """The portal group's consumer of the five dossier topics (started by the sync's
    lifecycle)."""
    return consume_dossier_events_in_batches(
        context, group=PORTAL_GROUP, handlers=portal_handlers(sync), background=True
    )

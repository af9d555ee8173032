"""Subscriptions of the reporting service: every dossier topic and the catalogue, from the start.

One subscriber per event type, each delegating to the service layer (`service.ReportingService`):
a dossier event adds facts to its dossier (`domain.facts`), and the counters follow from the
facts, so events may arrive in any order across topics. The rebuild replays the topics through the
same subscribers.

The live consumer reads in batches (`consume_dossier_events_in_batches`): each dossier's events
in order, different dossiers concurrently, since each event waits on three database round trips and
the counters are sums that do not depend on the order between dossiers.
"""

from __future__ import annotations

from services.reporting.service import ReportingService
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent, Contract
from shared.contracts.events import (
    DossierNotified,
    DossierPaid,
    DossierProcessed,
    DossierRated,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.contracts.topics import REPORTING_GROUP
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.consumer import EventHandler
from shared.runtime.service import ServiceContext, consume_dossier_events_in_batches


def handlers_for(reporting: ReportingService) -> dict[type[Contract], EventHandler]:
    """The subscriber of each event model reporting consumes."""

    async def on_procedure(event: Procedure, cloud_event: CloudEvent) -> None:
        await reporting.save_procedure(event)

    async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        await reporting.record(event, cloud_event.id)

    async def on_supplemented(event: DossierSupplemented, cloud_event: CloudEvent) -> None:
        await reporting.record(event, cloud_event.id)

    async def on_withdrawn(event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
        await reporting.record(event, cloud_event.id)

    async def on_paid(event: DossierPaid, cloud_event: CloudEvent) -> None:
        await reporting.record(event, cloud_event.id)

    async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
        await reporting.record(event, cloud_event.id)

    async def on_notified(event: DossierNotified, cloud_event: CloudEvent) -> None:
        await reporting.record(event, cloud_event.id)

    async def on_rated(event: DossierRated, cloud_event: CloudEvent) -> None:
        await reporting.record(event, cloud_event.id)

    return {
        Procedure: on_procedure,
        DossierSubmitted: on_submitted,
        DossierSupplemented: on_supplemented,
        DossierWithdrawn: on_withdrawn,
        DossierPaid: on_paid,
        DossierProcessed: on_processed,
        DossierNotified: on_notified,
        DossierRated: on_rated,
    }


def consumer(context: ServiceContext, reporting: ReportingService) -> BatchConsumer:
    """The reporting group's consumer (started by the service's lifecycle)."""
    return consume_dossier_events_in_batches(
        context, group=REPORTING_GROUP, handlers=handlers_for(reporting), background=True
    )

"""Intake's subscriptions: the citizen-facing status view and the portal inbox, fed by processing's
and notification's events, read in batches (`consume_dossier_events_in_batches`: each dossier's
events in order, different dossiers at the same time; most of them change nothing here, and a
FastStream subscriber's per-event overhead was a tenth of intake's CPU under load)."""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.service.status import StatusView
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import DossierNotified, DossierProcessed
from shared.contracts.topics import INTAKE_GROUP
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.service import ServiceContext, consume_dossier_events_in_batches


@dataclass(frozen=True)
class Subscribers:
    """One subscriber per event type, each delegating to the service layer."""

    status: StatusView

    async def on_processed(self, event: DossierProcessed, cloud_event: CloudEvent) -> None:
        await self.status.apply_processed(event, cloud_event.id)

    async def on_notified(self, event: DossierNotified, cloud_event: CloudEvent) -> None:
        await self.status.apply_notified(event, cloud_event.id)


def register(context: ServiceContext, status: StatusView) -> BatchConsumer:
    """The status view's consumer, started by the lifecycle (`main.run_status_consumer`)."""
    subscribers = Subscribers(status)
    return consume_dossier_events_in_batches(
        context,
        group=INTAKE_GROUP,
        handlers={
            DossierProcessed: subscribers.on_processed,
            DossierNotified: subscribers.on_notified,
        },
    )

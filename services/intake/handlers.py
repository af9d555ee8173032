"""Intake's subscriptions: the citizen-facing status view and the portal inbox."""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.service.status import StatusView
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import DossierNotified, DossierProcessed
from shared.contracts.topics import INTAKE_GROUP
from shared.runtime.service import ServiceContext, subscribe_dossier_events


@dataclass(frozen=True)
class Subscribers:
    """One subscriber per event type, each delegating to the service layer."""

    status: StatusView

    async def on_processed(self, event: DossierProcessed, cloud_event: CloudEvent) -> None:
        await self.status.apply_processed(event, cloud_event.id)

    async def on_notified(self, event: DossierNotified, cloud_event: CloudEvent) -> None:
        await self.status.apply_notified(event, cloud_event.id)


def register(context: ServiceContext, status: StatusView) -> None:
    subscribers = Subscribers(status)
    subscribe_dossier_events(
        context,
        group=INTAKE_GROUP,
        handlers={
            DossierProcessed: subscribers.on_processed,
            DossierNotified: subscribers.on_notified,
        },
    )

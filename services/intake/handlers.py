"""Subscriptions of the intake service."""

import logging

from shared.cloudevents import CloudEvent
from shared.events import DossierNotified, DossierProcessed
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import INTAKE_GROUP

log = logging.getLogger(__name__)


def register(context: ServiceContext) -> None:
    subscribe_dossier_events(
        context,
        group=INTAKE_GROUP,
        handlers={
            DossierProcessed: on_processed,
            DossierNotified: on_notified,
        },
    )


async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the citizen-facing status view (issue 3)."""
    log.info("received %s", cloud_event.type)


async def on_notified(event: DossierNotified, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the portal inbox view (issue 3)."""
    log.info("received %s", cloud_event.type)

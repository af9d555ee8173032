"""Subscriptions of the notification service."""

import logging

from shared.cloudevents import CloudEvent
from shared.events import DossierProcessed, DossierSubmitted
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import NOTIFICATION_GROUP

log = logging.getLogger(__name__)


def register(context: ServiceContext) -> None:
    subscribe_dossier_events(
        context,
        group=NOTIFICATION_GROUP,
        handlers={
            DossierSubmitted: on_submitted,
            DossierProcessed: on_processed,
        },
    )


async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the receipt message (issue 5)."""
    log.info("received %s", cloud_event.type)


async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
    """Skeleton: will build a step message (issue 5)."""
    log.info("received %s", cloud_event.type)

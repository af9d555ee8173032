"""Subscriptions of the processing service."""

import logging

from shared.cloudevents import CloudEvent
from shared.events import DossierPaid, DossierSubmitted, DossierSupplemented, DossierWithdrawn
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import PROCESSING_GROUP

log = logging.getLogger(__name__)


def register(context: ServiceContext) -> None:
    subscribe_dossier_events(
        context,
        group=PROCESSING_GROUP,
        handlers={
            DossierSubmitted: on_submitted,
            DossierSupplemented: on_supplemented,
            DossierWithdrawn: on_withdrawn,
            DossierPaid: on_paid,
        },
    )


async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
    """Skeleton: will build a new case (issue 4)."""
    log.info("received %s", cloud_event.type)


async def on_supplemented(event: DossierSupplemented, cloud_event: CloudEvent) -> None:
    """Skeleton: will build resuming the case (issue 4)."""
    log.info("received %s", cloud_event.type)


async def on_withdrawn(event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
    """Skeleton: will build a withdrawal request (issue 4)."""
    log.info("received %s", cloud_event.type)


async def on_paid(event: DossierPaid, cloud_event: CloudEvent) -> None:
    """Skeleton: will build resuming the case (issue 4)."""
    log.info("received %s", cloud_event.type)

"""Subscriptions of the reporting service."""

import logging

from shared.cloudevents import CloudEvent
from shared.events import (
    DossierNotified,
    DossierPaid,
    DossierProcessed,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import REPORTING_GROUP

log = logging.getLogger(__name__)


def register(context: ServiceContext) -> None:
    subscribe_dossier_events(
        context,
        group=REPORTING_GROUP,
        handlers={
            DossierSubmitted: on_submitted,
            DossierSupplemented: on_supplemented,
            DossierWithdrawn: on_withdrawn,
            DossierPaid: on_paid,
            DossierProcessed: on_processed,
            DossierNotified: on_notified,
        },
    )


async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the quarterly counters (issue 6)."""
    log.info("received %s", cloud_event.type)


async def on_supplemented(event: DossierSupplemented, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the quarterly counters (issue 6)."""
    log.info("received %s", cloud_event.type)


async def on_withdrawn(event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the quarterly counters (issue 6)."""
    log.info("received %s", cloud_event.type)


async def on_paid(event: DossierPaid, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the quarterly counters (issue 6)."""
    log.info("received %s", cloud_event.type)


async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the quarterly counters (issue 6)."""
    log.info("received %s", cloud_event.type)


async def on_notified(event: DossierNotified, cloud_event: CloudEvent) -> None:
    """Skeleton: will build the quarterly counters (issue 6)."""
    log.info("received %s", cloud_event.type)

"""The two batch subscriptions of the part for other agencies, each in its own consumer group:

- the public stream reads the internal dossier topics and publishes their public projection;
- the webhooks read the public topic and record a delivery per matching subscription.

Both are started and stopped by their part's lifecycle (`services.notification.main`).
"""

from __future__ import annotations

from services.notification.settings import NotificationSettings
from services.notification.webhooks.dispatcher import Dispatcher
from services.notification.webhooks.service import PublicStream
from shared.contracts.events import DossierProcessed, DossierSubmitted, PublicDossierStatus
from shared.contracts.topics import PUBLIC_STREAM_GROUP, WEBHOOK_GROUP
from shared.runtime.batch_consumer import BatchConsumer, Parsed, routes_for
from shared.runtime.service import ServiceContext


def public_stream_consumer(
    context: ServiceContext, settings: NotificationSettings, stream: PublicStream
) -> BatchConsumer:
    """Submitted and processed dossiers, in batches, into the public projection."""

    async def on_dossier_events(batch: list[Parsed]) -> None:
        await stream.publish_batch(batch)

    return BatchConsumer(
        settings,
        context.broker,
        group=PUBLIC_STREAM_GROUP,
        routes=routes_for(settings, [DossierSubmitted, DossierProcessed]),
        handle=on_dossier_events,
        policy=context.retry_policy,
        max_records=settings.public_stream_batch_size,
    )


def webhook_consumer(
    context: ServiceContext, settings: NotificationSettings, dispatcher: Dispatcher
) -> BatchConsumer:
    """Public dossier-status events, in batches, into the webhook deliveries; the dispatcher
    follows the partitions this replica is assigned."""

    async def on_public_events(batch: list[Parsed]) -> None:
        await dispatcher.ingest(batch)

    return BatchConsumer(
        settings,
        context.broker,
        group=WEBHOOK_GROUP,
        routes={settings.topic(PublicDossierStatus.topic): PublicDossierStatus},
        handle=on_public_events,
        policy=context.retry_policy,
        max_records=settings.webhook_batch_size,
        on_assignment=dispatcher.on_assignment,
    )

"""Wiring of the notification service's parts (store, channels, notifier, relay, handlers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from services.notification.channels.base import Channel
from services.notification.channels.email import SmtpEmailChannel
from services.notification.channels.guard import GuardedChannel
from services.notification.channels.inbox import InboxChannel
from services.notification.channels.sms import HttpSmsChannel
from services.notification.domain.delivery import RetryConfig
from services.notification.domain.rate_limit import TokenBucket
from services.notification.handlers import NotificationHandlers
from services.notification.notifier import Notifier
from services.notification.portal.sync import PortalSync
from services.notification.public_stream import PublicStream
from services.notification.rendering import TemplateRenderer
from services.notification.settings import NotificationSettings
from services.notification.store import NotificationStore
from services.notification.webhooks.service import Webhooks
from shared.batch_consumer import BatchConsumer, routes_for
from shared.events import DossierNotified, DossierProcessed, DossierSubmitted
from shared.outbox import OutboxRelay
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import (
    NOTIFICATION_GROUP,
    PORTAL_GROUP,
    PUBLIC_DOSSIER_STATUS_TOPIC,
    PUBLIC_STREAM_GROUP,
)


def build_channels(settings: NotificationSettings, store: NotificationStore) -> dict[str, Channel]:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    email = SmtpEmailChannel(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=password,
        validate_certs=settings.smtp_validate_certs,
        timeout=settings.smtp_timeout_seconds,
        pool_size=settings.smtp_pool_size,
    )
    sms = HttpSmsChannel(
        url=settings.sms_gateway_url,
        token=settings.sms_gateway_token.get_secret_value(),
        timeout=settings.sms_timeout_seconds,
        max_connections=settings.sms_max_connections,
    )
    breaker = {
        "failure_threshold": settings.breaker_failure_threshold,
        "reset_timeout": settings.breaker_reset_seconds,
    }
    return {
        "sms": GuardedChannel(
            sms, bucket=TokenBucket(settings.sms_rate_per_second, settings.sms_burst), **breaker
        ),
        "email": GuardedChannel(
            email,
            bucket=TokenBucket(settings.email_rate_per_second, settings.email_burst),
            **breaker,
        ),
        "inbox": InboxChannel(store.inbox),
    }


class NotificationRuntime:
    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        self.renderer = TemplateRenderer(
            sms_max_segments=settings.sms_max_segments,
            sms_strip_diacritics=settings.sms_strip_diacritics,
        )

    def register(self, context: ServiceContext) -> None:
        settings = self.settings
        self.store = NotificationStore(context.db)
        self.relay = OutboxRelay(
            self.store.deliveries,
            context.broker,
            poll_interval=settings.outbox_poll_seconds,
            max_poll_interval=settings.idle_poll_max_seconds,
        )
        self.channels = build_channels(settings, self.store)
        self.notifier = Notifier(
            self.store,
            self.channels,
            notified_topic=settings.topic(DossierNotified.topic),
            relay=self.relay,
            retry=RetryConfig(
                max_attempts=settings.delivery_max_attempts,
                base_delay=settings.delivery_backoff_seconds,
                max_delay=settings.delivery_backoff_max_seconds,
                lease=settings.delivery_lease_seconds,
                poll_interval=settings.delivery_poll_seconds,
                workers=settings.delivery_workers,
                max_poll_interval=settings.idle_poll_max_seconds,
            ),
        )
        self.handlers = NotificationHandlers(
            store=self.store, notifier=self.notifier, renderer=self.renderer, settings=settings
        )
        subscribe_dossier_events(
            context,
            group=NOTIFICATION_GROUP,
            handlers={
                DossierSubmitted: self.handlers.on_submitted,
                DossierProcessed: self.handlers.on_processed,
            },
        )
        # The public projection reads the same topics with its own group, in batches.
        public = PublicStream(context.broker, settings.topic(PUBLIC_DOSSIER_STATUS_TOPIC))
        self.public_consumer = BatchConsumer(
            settings,
            context.broker,
            group=PUBLIC_STREAM_GROUP,
            routes=routes_for(settings, [DossierSubmitted, DossierProcessed]),
            handle=public.publish_batch,
            policy=context.retry_policy,
            max_records=settings.public_stream_batch_size,
        )
        self.webhooks = Webhooks(settings, context) if settings.webhook_enabled else None
        self.portal: PortalSync | None = None
        if settings.portal_enabled:
            self.portal = PortalSync(context.db, settings)
            subscribe_dossier_events(context, group=PORTAL_GROUP, handlers=self.portal.handlers())

    @asynccontextmanager
    async def lifecycle(self, context: ServiceContext) -> AsyncIterator[None]:
        """Background parts: started after the broker, stopped before it (see shared.service)."""
        await self.store.ensure_indexes()
        self.relay.start()
        self.notifier.start()
        await self.public_consumer.start()
        try:
            async with AsyncExitStack() as stack:
                if self.webhooks:
                    await stack.enter_async_context(self.webhooks.lifecycle())
                if self.portal:
                    await stack.enter_async_context(self.portal.lifecycle(context))
                yield
        finally:
            await self.public_consumer.stop()
            await self.notifier.stop()
            await self.relay.stop()  # publishes what is pending while the broker is still up
            for channel in self.channels.values():
                await channel.close()

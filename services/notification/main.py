"""Composition root of the notification service: settings -> adapters -> service layer ->
routers, subscribers and lifecycle hooks, for its three parts:

- `citizens`: messages to citizens (store, channels, outbox relay, notifier, `CitizenMessages`);
- `webhooks`: the public stream for other agencies, and their webhooks (`WebhookService`);
- `portal`: the national-portal sync (`PortalSync`).

Everything built is held by one `Notification`; routes reach their part's service layer through
`app.state` (`citizens`, `webhooks`, `portal`), hooks are closures over it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from services.notification.citizens import api as citizens_api
from services.notification.citizens import handlers as citizens_handlers
from services.notification.citizens.adapters.email import SmtpEmailChannel
from services.notification.citizens.adapters.guard import GuardedChannel
from services.notification.citizens.adapters.inbox import InboxChannel
from services.notification.citizens.adapters.rate_limit import TokenBucket
from services.notification.citizens.adapters.sms import HttpSmsChannel
from services.notification.citizens.adapters.store import NotificationStore
from services.notification.citizens.adapters.templates import TemplateRenderer
from services.notification.citizens.domain.ports import Channel
from services.notification.citizens.notifier import Notifier
from services.notification.citizens.service import CitizenMessages
from services.notification.domain.retry import RetryConfig
from services.notification.portal import api as portal_api
from services.notification.portal import handlers as portal_handlers
from services.notification.portal.adapters.client import PortalClient
from services.notification.portal.adapters.store import PortalStore
from services.notification.portal.service import PortalSync
from services.notification.portal.settings import PortalSettings
from services.notification.portal.worker import PortalWorker
from services.notification.settings import NotificationSettings
from services.notification.webhooks import api as webhooks_api
from services.notification.webhooks.adapters.public_topic import PublicTopicReader
from services.notification.webhooks.adapters.replay_jobs import ReplayJobStore
from services.notification.webhooks.adapters.sealing import SecretBox
from services.notification.webhooks.adapters.sender import WebhookSender
from services.notification.webhooks.adapters.store import WebhookStore
from services.notification.webhooks.adapters.url_check import UrlChecker
from services.notification.webhooks.dispatcher import Dispatcher
from services.notification.webhooks.domain.subscriptions import DispatchConfig
from services.notification.webhooks.handlers import public_stream_consumer, webhook_consumer
from services.notification.webhooks.service import PublicStream, WebhookService
from services.notification.webhooks.settings import allows_private_urls, url_rules
from shared.contracts.events import DossierNotified
from shared.contracts.topics import PUBLIC_DOSSIER_STATUS_TOPIC
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.outbox import OutboxRelay
from shared.runtime.service import ServiceContext, build_service_app
from shared.tools.asyncapi import asyncapi_router


@dataclass
class Citizens:
    """The citizen messages: adapters and the service layer."""

    store: NotificationStore
    channels: dict[str, Channel]
    relay: OutboxRelay
    notifier: Notifier
    messages: CitizenMessages


@dataclass
class Notification:
    """Everything the notification service runs, built once by `compose`."""

    settings: NotificationSettings
    citizens: Citizens
    citizens_consumer: BatchConsumer
    public_stream: BatchConsumer
    webhooks: WebhookService | None  # None when disabled
    portal: PortalSync | None  # None when disabled
    portal_consumer: BatchConsumer | None


# ---------------------------------------------------------------------------------- citizens


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


def build_citizens(settings: NotificationSettings, context: ServiceContext) -> Citizens:
    store = NotificationStore(context.db)
    relay = OutboxRelay(
        store.deliveries,
        context.broker,
        poll_interval=settings.outbox_poll_seconds,
        max_poll_interval=settings.idle_poll_max_seconds,
    )
    channels = build_channels(settings, store)
    notifier = Notifier(
        store,
        channels,
        notified_topic=settings.topic(DossierNotified.topic),
        relay=relay,
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
    renderer = TemplateRenderer(
        sms_max_segments=settings.sms_max_segments,
        sms_strip_diacritics=settings.sms_strip_diacritics,
    )
    messages = CitizenMessages(store=store, notifier=notifier, renderer=renderer, settings=settings)
    return Citizens(store, channels, relay, notifier, messages)


@asynccontextmanager
async def citizens_running(citizens: Citizens) -> AsyncIterator[None]:
    await citizens.store.ensure_indexes()
    citizens.relay.start()
    citizens.notifier.start()
    try:
        yield
    finally:
        await citizens.notifier.stop()
        await citizens.relay.stop()  # publishes what is pending while the broker is still up
        for channel in citizens.channels.values():
            await channel.close()


# ---------------------------------------------------------------------------------- webhooks


def build_webhooks(settings: NotificationSettings, context: ServiceContext) -> WebhookService:
    store = WebhookStore(context.db)
    box = SecretBox(settings.webhook_sealing_keys.get_secret_value())
    config = DispatchConfig(
        retry_schedule=tuple(settings.webhook_retry_schedule_seconds),
        workers_per_subscription=settings.webhook_workers_per_subscription,
        timeout=settings.webhook_timeout_seconds,
        breaker_failures=settings.webhook_breaker_failures,
        breaker_probe_seconds=settings.webhook_breaker_probe_seconds,
        max_queued_per_subscription=settings.webhook_max_queued_per_subscription,
        allow_private_urls=allows_private_urls(settings),
        max_connections=settings.webhook_max_connections,
        idle_poll_max_seconds=settings.idle_poll_max_seconds,
    )
    # One URL check (rules and resolver) for the registry and the connections it allows.
    urls = UrlChecker(url_rules(settings))
    dispatcher = Dispatcher(store, box, config, WebhookSender(config, urls))
    return WebhookService(
        settings=settings,
        store=store,
        box=box,
        dispatcher=dispatcher,
        consumer=webhook_consumer(context, settings, dispatcher),
        replay_jobs=ReplayJobStore(context.db),
        public_topic=PublicTopicReader(settings),
        urls=urls,
        idle_poll_max_seconds=settings.idle_poll_max_seconds,
    )


# ---------------------------------------------------------------------------------- portal


def _now() -> datetime:
    return datetime.now(UTC)


def build_portal_sync(
    db: AsyncDatabase[dict[str, Any]],
    settings: PortalSettings,
    *,
    client: PortalClient | None = None,
    clock: Callable[[], datetime] = _now,
) -> PortalSync:
    """The national-portal sync over `db` (also what the portal command line runs)."""
    store = PortalStore(db)
    client = client or PortalClient(
        base_url=settings.portal_url,
        username=settings.portal_username,
        password=settings.portal_password.get_secret_value(),
        timeout=settings.portal_timeout_seconds,
        session_margin=settings.portal_session_margin_seconds,
    )
    worker = PortalWorker(
        store,
        client,
        RetryConfig(
            max_attempts=settings.portal_max_attempts,
            base_delay=settings.portal_backoff_seconds,
            max_delay=settings.portal_backoff_max_seconds,
            lease=settings.portal_lease_seconds,
            poll_interval=settings.portal_poll_seconds,
            workers=settings.portal_workers,
            # The service's idle cap (`shared.runtime.settings.ServiceSettings`), when the settings
            # have it.
            max_poll_interval=getattr(settings, "idle_poll_max_seconds", None),
        ),
        clock=clock,
    )
    return PortalSync(settings=settings, store=store, client=client, worker=worker, clock=clock)


# ---------------------------------------------------------------------------------- the service


def compose(settings: NotificationSettings, context: ServiceContext) -> Notification:
    """Build every part and subscribe its handlers (before the broker starts)."""
    citizens = build_citizens(settings, context)
    citizens_consumer = citizens_handlers.consumer(context, citizens.messages)
    stream = PublicStream(context.broker, settings.topic(PUBLIC_DOSSIER_STATUS_TOPIC))
    public_stream = public_stream_consumer(context, settings, stream)
    webhooks = build_webhooks(settings, context) if settings.webhook_enabled else None
    portal: PortalSync | None = None
    portal_consumer: BatchConsumer | None = None
    if settings.portal_enabled:
        portal = build_portal_sync(context.db, settings)
        portal_consumer = portal_handlers.consumer(context, portal)
    return Notification(
        settings, citizens, citizens_consumer, public_stream, webhooks, portal, portal_consumer
    )


@asynccontextmanager
async def running(notification: Notification, context: ServiceContext) -> AsyncIterator[None]:
    """The background parts: started after the broker, stopped before it, in reverse order (see
    `shared.runtime.service`)."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(citizens_running(notification.citizens))
        await stack.enter_async_context(notification.citizens_consumer.running())
        await stack.enter_async_context(notification.public_stream.running())
        if notification.webhooks:
            await stack.enter_async_context(notification.webhooks.lifecycle())
        if notification.portal and notification.portal_consumer:
            await stack.enter_async_context(notification.portal.lifecycle(context))
            await stack.enter_async_context(notification.portal_consumer.running())
        yield


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    notification: Notification | None = None  # composed when `build_service_app` registers

    def register(context: ServiceContext) -> None:
        nonlocal notification
        notification = compose(settings, context)

    def lifecycle(context: ServiceContext) -> AbstractAsyncContextManager[None]:
        assert notification is not None
        return running(notification, context)

    app = build_service_app(
        settings,
        title="Notification (thông báo)",
        register=register,
        routers=[citizens_api.router, webhooks_api.router, portal_api.router, asyncapi_router],
        hooks=[lifecycle],
    )
    assert notification is not None
    app.state.notification = notification
    app.state.citizens = notification.citizens.messages
    app.state.webhooks = notification.webhooks
    app.state.portal = notification.portal
    return app

"""The webhook part of the notification service: registry, dispatcher, replays, wired together."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from services.notification.webhooks.dispatcher import DispatchConfig, Dispatcher
from services.notification.webhooks.replay import replay
from services.notification.webhooks.sealing import SecretBox
from services.notification.webhooks.settings import WebhookSettings
from services.notification.webhooks.store import Document, WebhookStore
from shared.background import Pacer, periodically
from shared.batch_consumer import BatchConsumer
from shared.events import PublicDossierStatus
from shared.service import ServiceContext
from shared.settings import ServiceSettings
from shared.topics import WEBHOOK_GROUP

log = logging.getLogger(__name__)


def allows_private_urls(settings: Any) -> bool:
    """Development and tests may call local receivers; production never does."""
    return bool(settings.webhook_allow_private_urls) and settings.environment != "production"


class Webhooks:
    def __init__(self, settings: WebhookSettings, context: ServiceContext) -> None:
        service_settings: ServiceSettings = context.settings
        self.settings = settings
        self.context = context
        self.store = WebhookStore(context.db)
        self.box = SecretBox(settings.webhook_sealing_keys.get_secret_value())
        self.dispatcher = Dispatcher(
            self.store,
            self.box,
            DispatchConfig(
                retry_schedule=tuple(settings.webhook_retry_schedule_seconds),
                workers_per_subscription=settings.webhook_workers_per_subscription,
                timeout=settings.webhook_timeout_seconds,
                breaker_failures=settings.webhook_breaker_failures,
                breaker_probe_seconds=settings.webhook_breaker_probe_seconds,
                max_queued_per_subscription=settings.webhook_max_queued_per_subscription,
                allow_private_urls=allows_private_urls(settings),
                max_connections=settings.webhook_max_connections,
                idle_poll_max_seconds=service_settings.idle_poll_max_seconds,
            ),
        )
        self.consumer = BatchConsumer(
            service_settings,
            context.broker,
            group=WEBHOOK_GROUP,
            routes={service_settings.topic(PublicDossierStatus.topic): PublicDossierStatus},
            handle=self.dispatcher.ingest,
            policy=context.retry_policy,
            max_records=settings.webhook_batch_size,
            on_assignment=self.dispatcher.on_assignment,
        )
        self._replays: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifecycle(self) -> AsyncIterator[None]:
        await self.store.ensure_indexes()
        await self.dispatcher.refresh()  # before consuming: events need their subscriptions
        await self.consumer.start()
        try:
            async with AsyncExitStack() as stack:
                # Outcomes: when attempts end (woken by each), at most every `flush_interval`.
                outcomes = self.dispatcher.writer.pacer
                await stack.enter_async_context(
                    periodically("webhook outcomes", outcomes, self.dispatcher.flush)
                )
                # Changes made through other replicas (this one's are followed at once, see
                # `changed`): every `webhook_refresh_seconds` after one, less often while none.
                registry = Pacer(
                    self.settings.webhook_refresh_seconds,
                    self.context.settings.idle_poll_max_seconds,
                )
                await stack.enter_async_context(
                    periodically("webhook registry", registry, self._follow)
                )
                yield
        finally:
            await self.consumer.stop()
            for task in self._replays:
                task.cancel()
            await asyncio.gather(*self._replays, return_exceptions=True)
            await self.dispatcher.close()

    async def _follow(self) -> int:
        """Follow the registry; returns how much changed (subscriptions, deliveries queued)."""
        return await self.dispatcher.refresh() + await self.dispatcher.reload_all()

    async def changed(self, subscription_id: str) -> None:
        """The registry changed here: follow it now rather than at the next refresh."""
        await self.dispatcher.refresh()
        live = self.dispatcher.live.get(subscription_id)
        if live:
            live.spilled = True
            await self.dispatcher.reload(live)

    async def start_replay(self, subscription: Document, since: datetime) -> Document:
        job: Document = {
            "_id": str(uuid.uuid4()),
            "subscription_id": subscription["_id"],
            "agency_id": subscription["agency_id"],
            "since": since,
            "status": "running",
            "enqueued": 0,
            "created_at": datetime.now(UTC),
        }
        await self.store.replays.insert_one(job)
        task = asyncio.create_task(self._run_replay(subscription, since, job["_id"]))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)
        return job

    async def _run_replay(self, subscription: Document, since: datetime, job_id: str) -> None:
        try:
            count = await replay(self.context.settings, self.store, subscription, since, job_id)
            fields: Document = {"status": "done", "enqueued": count}
        except Exception as exc:
            log.exception("replay %s failed", job_id)
            fields = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
        fields["finished_at"] = datetime.now(UTC)
        await self.store.replays.update_one({"_id": job_id}, {"$set": fields})
        await self.changed(str(subscription["_id"]))

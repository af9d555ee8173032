"""The agency webhooks' use cases: the subscription registry (as each agency sees it), redrives
and replays, the dispatcher's background loops; and the public stream's projection."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker

from services.notification.metrics import PUBLIC_EVENTS
from services.notification.webhooks.adapters.public_topic import PublicTopicReader
from services.notification.webhooks.adapters.replay_jobs import ReplayJobStore
from services.notification.webhooks.adapters.sealing import SecretBox, UnreadableSecret
from services.notification.webhooks.adapters.store import Document, WebhookStore, delivery_id
from services.notification.webhooks.adapters.url_check import UrlChecker
from services.notification.webhooks.dispatcher import Dispatcher
from services.notification.webhooks.domain.errors import (
    ReplayInFuture,
    ReplayNotFound,
    SecretUnreadable,
    SubscriptionNotFound,
    TooManyReplays,
    TooManySubscriptions,
    UnknownEventTypes,
)
from services.notification.webhooks.domain.projection import is_public, public_cloud_event
from services.notification.webhooks.domain.signing import new_secret
from services.notification.webhooks.domain.subscriptions import (
    MAX_SUBSCRIPTIONS_PER_AGENCY,
    DeliveryStatus,
    Filters,
    SubscriptionStatus,
    unknown_event_types,
    webhook_body,
)
from services.notification.webhooks.settings import WebhookSettings
from shared.contracts.cloudevents import CloudEvent, MalformedEvent, unwrap
from shared.contracts.events import PublicDossierStatus
from shared.runtime.background import Pacer, cancel_and_wait, periodically
from shared.runtime.batch_consumer import BatchConsumer, Parsed
from shared.runtime.kafka import publish_cloud_events

log = logging.getLogger(__name__)

# A running replay writes its heartbeat at every batch it reads (at least every second or so);
# one silent for this long was cut short (its replica ended) and no longer counts as running.
REPLAY_HEARTBEAT_STALE = timedelta(minutes=5)


class WebhookService:
    def __init__(
        self,
        *,
        settings: WebhookSettings,
        store: WebhookStore,
        box: SecretBox,
        dispatcher: Dispatcher,
        consumer: BatchConsumer,
        replay_jobs: ReplayJobStore,
        public_topic: PublicTopicReader,
        urls: UrlChecker,
        idle_poll_max_seconds: float | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.box = box
        self.dispatcher = dispatcher
        self.consumer = consumer  # the public topic, into `dispatcher.ingest`
        self.replay_jobs = replay_jobs
        self.public_topic = public_topic
        self.urls = urls  # the URL rules and resolver, shared with the dispatcher's sender
        self.idle_poll_max_seconds = idle_poll_max_seconds
        self._replays: set[asyncio.Task[None]] = set()
        self._replay_admission = asyncio.Lock()  # counting and recording a replay: one at once

    # ------------------------------------------------------------------ lifecycle

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
                registry = Pacer(self.settings.webhook_refresh_seconds, self.idle_poll_max_seconds)
                await stack.enter_async_context(
                    periodically("webhook registry", registry, self._follow)
                )
                yield
        finally:
            await self.consumer.stop()
            await cancel_and_wait(*self._replays)
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

    # ------------------------------------------------------------------ agencies

    async def agency_for_key(self, key: str) -> Document | None:
        return await self.store.agency_for_key(key)

    async def subscriptions_of(self, agency: Document) -> list[Document]:
        return await self.store.subscriptions_of(agency["_id"])

    async def own_subscription(self, agency: Document, subscription_id: str) -> Document:
        """The agency's subscription; `SubscriptionNotFound` for any other id."""
        document = await self.store.subscription(subscription_id)
        if document is None or document.get("agency_id") != agency["_id"]:
            raise SubscriptionNotFound(subscription_id)
        return document

    # ------------------------------------------------------------------ subscriptions

    async def create_subscription(
        self, agency: Document, *, url: str, filters: Filters, description: str | None
    ) -> tuple[Document, str]:
        """A new subscription and its signing secret (shown once)."""
        existing = await self.store.subscriptions_of(agency["_id"])
        if len(existing) >= MAX_SUBSCRIPTIONS_PER_AGENCY:
            raise TooManySubscriptions(agency["_id"])
        now = datetime.now(UTC)
        secret = new_secret()
        document: Document = {
            "_id": str(uuid.uuid4()),
            "agency_id": agency["_id"],
            "url": await self._checked_url(url),
            "filters": _checked_filters(filters).model_dump(),
            "description": description,
            "sealed_secret": self.box.seal(secret),
            "status": SubscriptionStatus.ACTIVE,
            "created_at": now,
            "updated_at": now,
        }
        await self.store.insert_subscription(document)
        await self.changed(document["_id"])
        return document, secret

    async def update_subscription(
        self,
        agency: Document,
        subscription_id: str,
        *,
        url: str | None,
        filters: Filters | None,
        description: str | None,
        enabled: bool | None,
    ) -> Document:
        document = await self.own_subscription(agency, subscription_id)
        fields: Document = {}
        if url is not None:
            fields["url"] = await self._checked_url(url)
        if filters is not None:
            fields["filters"] = _checked_filters(filters).model_dump()
        if description is not None:
            fields["description"] = description
        if enabled is not None:
            disabled = document["status"] == SubscriptionStatus.DISABLED
            if enabled and disabled:
                fields["status"] = SubscriptionStatus.ACTIVE
            elif not enabled:
                fields["status"] = SubscriptionStatus.DISABLED
        updated = await self.store.update_subscription(subscription_id, fields)
        await self.changed(subscription_id)
        return updated or document

    async def delete_subscription(self, agency: Document, subscription_id: str) -> None:
        await self.own_subscription(agency, subscription_id)
        await self.store.delete_subscription(subscription_id)
        await self.changed(subscription_id)

    async def rotate_secret(self, agency: Document, subscription_id: str) -> tuple[Document, str]:
        """A new signing secret, in force at once (the old one stops working)."""
        await self.own_subscription(agency, subscription_id)
        secret = new_secret()
        updated = await self.store.update_subscription(
            subscription_id, {"sealed_secret": self.box.seal(secret)}
        )
        await self.changed(subscription_id)
        return updated or {}, secret

    async def resume(self, agency: Document, subscription_id: str) -> Document:
        """Resume a subscription paused by its circuit breaker (after fixing the receiver); one
        whose signing secret cannot be opened needs a rotation instead (`SecretUnreadable`)."""
        document = await self.own_subscription(agency, subscription_id)
        if document["status"] != SubscriptionStatus.PAUSED:
            return document
        try:
            self.box.open(document.get("sealed_secret"))
        except UnreadableSecret:
            raise SecretUnreadable(subscription_id) from None
        updated = await self.store.update_subscription(
            subscription_id, {"status": SubscriptionStatus.ACTIVE, "resumed_at": datetime.now(UTC)}
        )
        await self.dispatcher.refresh()
        await self.dispatcher.resume(subscription_id)
        return updated or document

    async def _checked_url(self, url: str) -> str:
        await self.urls.check(url)  # raises UrlRefused
        return url

    # ------------------------------------------------------------------ deliveries

    async def delivery_log(
        self,
        agency: Document,
        subscription_id: str,
        *,
        status: DeliveryStatus | None,
        since: datetime | None,
        limit: int,
    ) -> list[Document]:
        """The delivery log, newest first: metadata only (no payload)."""
        await self.own_subscription(agency, subscription_id)
        return await self.store.delivery_log(
            subscription_id, status=status, since=since, limit=limit
        )

    async def redrive(self, agency: Document, subscription_id: str, since: datetime | None) -> int:
        """The failed deliveries back to pending (a fresh round of retries), in their order."""
        await self.own_subscription(agency, subscription_id)
        count = await self.store.redrive(subscription_id, since)
        await self.changed(subscription_id)
        return count

    # ------------------------------------------------------------------ replays

    async def start_replay(
        self, agency: Document, subscription_id: str, since: datetime
    ) -> Document:
        """Deliver again every matching public event since a moment (after a long outage): the
        job is recorded and runs in the background. At most `webhook_max_replays_per_agency`
        run at once per agency (`TooManyReplays` beyond; exact within a replica, and replicas
        admitting at the very same moment may each let one more in)."""
        subscription = await self.own_subscription(agency, subscription_id)
        if since > datetime.now(UTC):
            raise ReplayInFuture(since.isoformat())
        limit = self.settings.webhook_max_replays_per_agency
        async with self._replay_admission:
            now = datetime.now(UTC)
            running = await self.replay_jobs.running(
                subscription["agency_id"], now - REPLAY_HEARTBEAT_STALE
            )
            if running >= limit:
                raise TooManyReplays(limit)
            job: Document = {
                "_id": str(uuid.uuid4()),
                "subscription_id": subscription["_id"],
                "agency_id": subscription["agency_id"],
                "since": since,
                "status": "running",
                "enqueued": 0,
                "created_at": now,
                "heartbeat_at": now,
            }
            await self.replay_jobs.insert(job)
        task = asyncio.create_task(self._run_replay(subscription, since, job["_id"]))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)
        return job

    async def replay_job(self, agency: Document, subscription_id: str, job_id: str) -> Document:
        await self.own_subscription(agency, subscription_id)
        job = await self.replay_jobs.job(job_id)
        if job is None or job["subscription_id"] != subscription_id:
            raise ReplayNotFound(job_id)
        return job

    async def _run_replay(self, subscription: Document, since: datetime, job_id: str) -> None:
        try:
            count = await self.replay(subscription, since, job_id)
            fields: Document = {"status": "done", "enqueued": count}
        except Exception as exc:
            log.exception("replay %s failed", job_id)
            fields = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
        fields["finished_at"] = datetime.now(UTC)
        await self.replay_jobs.update(job_id, fields)
        await self.changed(str(subscription["_id"]))

    async def replay(self, subscription: Document, since: datetime, job_id: str) -> int:
        """Record the subscription's deliveries of every public event since `since` (read again
        from the public topic, which is kept forever; filtered by the subscription); returns how
        many. The dispatcher sends them in order per dossier; the `webhook-id` of a replayed
        event is its original id, so a receiver that kept some of them deduplicates."""
        filters = Filters.model_validate(subscription.get("filters") or {})
        enqueued = 0
        async for records in self.public_topic.records_since(since):
            documents = [
                document
                for record in records
                if (document := _replayed(subscription, filters, record))
            ]
            await self.store.upsert_replayed(documents)
            enqueued += len(documents)
            fields = {"enqueued": enqueued, "heartbeat_at": datetime.now(UTC)}
            await self.replay_jobs.update(job_id, fields)
        return enqueued


def _checked_filters(filters: Filters) -> Filters:
    unknown = unknown_event_types(filters)
    if unknown:
        raise UnknownEventTypes(unknown)
    return filters


def _replayed(subscription: Document, filters: Filters, record: Any) -> Document | None:
    try:
        cloud_event = CloudEvent.from_kafka(record.value, record.headers)
        event = unwrap(cloud_event, [PublicDossierStatus])
    except MalformedEvent:
        return None  # the live consumer dead-lettered it already
    assert isinstance(event, PublicDossierStatus)
    if not filters.matches(event):
        return None
    now = datetime.now(UTC)
    return {
        "_id": delivery_id(str(subscription["_id"]), cloud_event.id),
        "subscription_id": str(subscription["_id"]),
        "agency_id": subscription.get("agency_id"),
        "event_id": cloud_event.id,
        "event_type": event.action,
        "dossier_code": event.dossier_code,
        "occurred_at": event.occurred_at,
        "partition": record.partition,
        "seq": record.offset,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "replayed_at": now,
        "next_attempt_at": now,
        "body": webhook_body(cloud_event),
    }


class PublicStream:
    """The public dossier-status stream: projects a batch of internal dossier events (read by its
    own consumer group) and publishes it, waiting once per batch for the broker's acks."""

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self.broker = broker
        self.topic = topic

    async def publish_batch(self, batch: list[Parsed]) -> None:
        events = [
            public_cloud_event(item.event, item.cloud_event)
            for item in batch
            if is_public(item.event)
        ]
        await publish_cloud_events(self.broker, self.topic, events)
        PUBLIC_EVENTS.inc(len(events))

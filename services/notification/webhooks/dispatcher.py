"""Webhook deliveries: from the public stream to each matching subscriber, signed, retried, in
order per dossier.

The database is the record (a delivery is inserted before the Kafka offset of its event is
committed, and every attempt's outcome is written); memory is the schedule. Each replica holds
the pending deliveries of the public-topic partitions it consumes — the record key is the dossier
code, so one dossier's deliveries always belong to one replica — and reloads them from the
database when it gains partitions, after a redrive or replay, and when its queue overflowed.

Each subscription has its own workers, queues and circuit breaker, so a slow or dead subscriber
holds up only itself. When the breaker opens the subscription is *paused*: nothing is attempted
(and no retry is spent) until a probe succeeds or the agency resumes it; its deliveries wait.
A subscription whose signing secret cannot be opened (`sealing.UnreadableSecret`) is paused the
same way, alone, until the secret is rotated (or its sealing key put back): the others start and
deliver as usual.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notification.adapters.breaker import BreakerState, CircuitBreaker
from services.notification.metrics import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_LATENCY,
    WEBHOOK_PAUSED,
    WEBHOOK_QUEUED,
)
from services.notification.webhooks.adapters.sealing import SecretBox, UnreadableSecret
from services.notification.webhooks.adapters.sender import WebhookSender
from services.notification.webhooks.adapters.store import Document, WebhookStore, delivery_id
from services.notification.webhooks.domain.queues import DossierQueues, QueuedDelivery
from services.notification.webhooks.domain.subscriptions import (
    DeliveryStatus,
    DispatchConfig,
    Filters,
    SubscriptionStatus,
    next_attempt_delay,
    webhook_body,
)
from shared.contracts.events import PublicDossierStatus
from shared.runtime.background import Pacer, cancel_and_wait, wait_for_event
from shared.runtime.batch_consumer import Parsed

log = logging.getLogger(__name__)

# Why a subscription is paused (`pause_reason`, shown to its agency).
PAUSED_BY_BREAKER = "circuit breaker open"
PAUSED_SECRET_UNREADABLE = (
    "signing secret unreadable (sealed with a key no longer configured): rotate the secret"
)


class OutcomeWriter:
    """Attempt outcomes, written in batches. `lock` keeps a reload from reading the database
    between an attempt's end and the write of its outcome (see `Dispatcher.reload`). Each
    recorded outcome wakes `pacer`, whose loop calls `flush`."""

    def __init__(self, store: WebhookStore, pacer: Pacer) -> None:
        self.store = store
        self.pacer = pacer
        self.lock = asyncio.Lock()
        self._pending: dict[str, Document] = {}

    def record(self, _id: str, update: Document) -> None:
        previous = self._pending.get(_id)
        self._pending[_id] = _merge(previous, update) if previous else update
        self.pacer.wake()

    def unwritten(self) -> set[str]:
        return set(self._pending)

    async def flush(self) -> int:
        """Write what was recorded; returns how many outcomes."""
        written = 0
        async with self.lock:
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    await self.store.write_outcomes(batch.items())
                except Exception:
                    for _id, update in batch.items():  # keep them for the next flush
                        self._pending.setdefault(_id, update)
                    raise
                written += len(batch)
        return written


def _merge(first: Document, second: Document) -> Document:
    """One update doing what `first` then `second` do (only `$set` and `$unset` are used)."""
    sets = dict(first.get("$set", {}))
    unsets = dict(first.get("$unset", {}))
    for name, value in second.get("$set", {}).items():
        sets[name] = value
        unsets.pop(name, None)
    for name in second.get("$unset", {}):
        unsets[name] = ""
        sets.pop(name, None)
    merged: Document = {"$set": sets} if sets else {}
    if unsets:
        merged["$unset"] = unsets
    return merged


@dataclass
class LiveSubscription:
    document: Document
    secret: str | None  # None: the sealed secret cannot be opened (paused until rotated)
    breaker: CircuitBreaker
    queues: DossierQueues = field(default_factory=DossierQueues)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Pulsed (set, then cleared) when the breaker changes state or the secret becomes readable:
    # paused workers wait for it.
    breaker_changed: asyncio.Event = field(default_factory=asyncio.Event)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    timers: set[asyncio.TimerHandle] = field(default_factory=set)
    spilled: bool = True  # the database may hold pending deliveries not in memory
    left_in_database: int = 0  # deliveries not queued in memory because spilled (a counter)
    filters: Filters = field(init=False)

    @property
    def id(self) -> str:
        return str(self.document["_id"])

    def __post_init__(self) -> None:
        self.update(self.document, self.secret)

    def update(self, document: Document, secret: str | None) -> None:
        self.document = document
        self.secret = secret  # opened once
        self.filters = Filters.model_validate(document.get("filters") or {})  # parsed once


class Dispatcher:
    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox,
        config: DispatchConfig,
        sender: WebhookSender | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.config = config
        self.sender = sender or WebhookSender(config)
        every = config.flush_interval
        self.writer = OutcomeWriter(
            store, Pacer(every, config.idle_poll_max_seconds, min_gap=every)
        )
        self.live: dict[str, LiveSubscription] = {}
        self.owned: set[int] = set()  # public-topic partitions this replica consumes
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ subscriptions

    async def refresh(self) -> int:
        """Follow the registry: start new subscriptions, stop removed or disabled ones; returns
        how many were started or stopped."""
        documents = {str(d["_id"]): d for d in await self.store.live_subscriptions()}
        gone = set(self.live) - set(documents)
        for sub_id in gone:
            await self._stop(self.live.pop(sub_id))
        started = 0
        for sub_id, document in documents.items():
            live = self.live.get(sub_id)
            if live is None:
                started += 1
                await self.reload(self._start(document))
            else:  # active <-> paused is this replica's breaker's to say
                document["status"] = live.document.get("status", document["status"])
                for name in ("pause_reason", "paused_at"):
                    if name in live.document:
                        document[name] = live.document[name]
                had_secret = live.secret is not None
                live.update(document, self._open_secret(document))
                if (live.secret is not None) != had_secret:
                    self._on_secret(live)
        return len(gone) + started

    def _open_secret(self, document: Document) -> str | None:
        """The subscription's signing secret, or None when it cannot be opened."""
        try:
            return self.box.open(document.get("sealed_secret"))
        except UnreadableSecret:
            return None

    def _on_secret(self, live: LiveSubscription) -> None:
        """The secret became unreadable (pause the subscription) or readable again (resume it
        unless its breaker is open)."""
        if live.secret is None:
            log.error(
                "webhook subscription %s of %s paused: its signing secret cannot be opened with "
                "the configured sealing keys (put the old key back, or the agency rotates it)",
                live.id,
                live.document.get("agency_id"),
            )
            self._set_status(live, SubscriptionStatus.PAUSED, PAUSED_SECRET_UNREADABLE)
            self._set_paused_metric(live, True)
            return
        log.info("webhook subscription %s: its signing secret opens again", live.id)
        if live.breaker.state == BreakerState.CLOSED:
            self._set_status(live, SubscriptionStatus.ACTIVE)
            self._set_paused_metric(live, False)
        else:
            self._set_status(live, SubscriptionStatus.PAUSED, PAUSED_BY_BREAKER)
        live.breaker_changed.set()  # wakes the workers waiting for the secret
        live.breaker_changed.clear()

    def _start(self, document: Document) -> LiveSubscription:
        sub_id = str(document["_id"])
        breaker = CircuitBreaker(
            failure_threshold=self.config.breaker_failures,
            reset_timeout=self.config.breaker_probe_seconds,
            on_change=lambda state: self._on_breaker(sub_id, state),
        )
        live = LiveSubscription(document, self._open_secret(document), breaker)
        self.live[sub_id] = live
        paused = document.get("status") == SubscriptionStatus.PAUSED
        if paused and document.get("pause_reason") != PAUSED_SECRET_UNREADABLE:
            breaker.trip()  # paused before a restart: stays paused until a probe succeeds
        if live.secret is None:
            self._on_secret(live)
        elif paused and breaker.state == BreakerState.CLOSED:
            self._on_secret(live)  # paused for its secret, which opens again
        live.workers = [
            asyncio.create_task(self._work(live), name=f"webhook-{live.id}-{n}")
            for n in range(self.config.workers_per_subscription)
        ]
        return live

    async def _stop(self, live: LiveSubscription) -> None:
        await cancel_and_wait(*live.workers)
        for timer in live.timers:
            timer.cancel()
        WEBHOOK_QUEUED.dec(len(live.queues))
        self._set_paused_metric(live, None)

    async def resume(self, subscription_id: str) -> None:
        """The agency resumes a paused subscription: close its breaker, wake its workers (a
        subscription paused for its secret stays paused: see `WebhookService.resume`)."""
        live = self.live.get(subscription_id)
        if live:
            live.breaker.record_success()
            live.wakeup.set()

    # ------------------------------------------------------------------ intake of events

    async def ingest(self, batch: list[Parsed]) -> None:
        """Record one delivery per matching subscription and event, then queue them."""
        if not self.live:
            return
        now = datetime.now(UTC)
        documents: list[Document] = []
        queued: list[tuple[LiveSubscription, QueuedDelivery]] = []
        for item in batch:
            event: PublicDossierStatus = item.event
            matching = [live for live in self.live.values() if live.filters.matches(event)]
            if not matching:
                continue
            body = webhook_body(item.cloud_event)
            for live in matching:
                delivery = QueuedDelivery(
                    id=delivery_id(live.id, item.cloud_event.id),
                    dossier_code=event.dossier_code,
                    event_id=item.cloud_event.id,
                    body=body,
                    partition=item.record.partition,
                    seq=item.record.offset,
                )
                documents.append(_delivery_document(live, delivery, event, now))
                queued.append((live, delivery))
        inserted = await self.store.insert_deliveries(documents)
        for live, delivery in queued:
            if delivery.id in inserted:  # a redelivered event's deliveries are already known
                self._enqueue(live, delivery)

    def _enqueue(self, live: LiveSubscription, delivery: QueuedDelivery) -> None:
        if live.spilled or len(live.queues) >= self.config.max_queued_per_subscription:
            live.spilled = True  # stays in the database; reloaded when the queue drains
            live.left_in_database += 1
            return
        if live.queues.add(delivery):
            WEBHOOK_QUEUED.inc()
            live.wakeup.set()

    async def reload(self, live: LiveSubscription) -> int:
        """Queue the pending deliveries of owned partitions that are not in memory yet."""
        room = self.config.max_queued_per_subscription - len(live.queues)
        if room <= 0 or not self.owned:
            return 0
        left_before = live.left_in_database
        async with self.writer.lock:  # no outcome is written meanwhile, so once read, ...
            documents = await self.store.pending(live.id, self.owned, room)
            # ... every attempt finished but not yet written is in here (and not in memory)
            unwritten = self.writer.unwritten()
        added = 0
        for document in documents:
            if document["_id"] in unwritten or document["_id"] in live.queues:
                continue
            if document.get("partition") not in self.owned or "body" not in document:
                continue
            delivery = QueuedDelivery(
                id=document["_id"],
                dossier_code=document["dossier_code"],
                event_id=document["event_id"],
                body=bytes(document["body"]),
                partition=document["partition"],
                seq=document["seq"],
                attempts=document.get("attempts", 0),
                not_before=_aware(document.get("next_attempt_at")),
            )
            if live.queues.add(delivery):
                WEBHOOK_QUEUED.inc()
                added += 1
        # Still spilled if the read was full, or if new deliveries were left in the database
        # while it ran (it may have missed them): later ones must not overtake them in memory.
        live.spilled = len(documents) >= room or live.left_in_database != left_before
        if added:
            live.wakeup.set()
        return added

    async def reload_all(self) -> int:
        """Reload the subscriptions that may have deliveries outside memory; returns how many
        deliveries were queued."""
        added = 0
        for live in list(self.live.values()):
            if live.spilled or not live.queues:
                added += await self.reload(live)
        return added

    async def on_assignment(self, assigned: set[Any], revoked: set[Any]) -> None:
        """Follow the public topic's partitions this replica consumes."""
        lost = {tp.partition for tp in revoked}
        if lost:
            self.owned -= lost
            for live in self.live.values():
                WEBHOOK_QUEUED.dec(live.queues.drop_partitions(lost))
                live.spilled = True
        if assigned:
            self.owned |= {tp.partition for tp in assigned}
            for live in self.live.values():
                live.spilled = True
                await self.reload(live)

    # ------------------------------------------------------------------ attempts

    async def _work(self, live: LiveSubscription) -> None:
        while True:
            delivery = live.queues.take()
            if delivery is None:
                live.wakeup.clear()
                await live.wakeup.wait()
                continue
            now = datetime.now(UTC)
            if delivery.not_before and delivery.not_before > now:
                self._release_later(live, delivery, (delivery.not_before - now).total_seconds())
                continue
            # Paused: wait for the probe time, a probe's outcome or a resume (each changes the
            # breaker's state); while another worker's probe is out, at most its time-out. An
            # unreadable secret: until it opens (checked again at each refresh).
            while live.secret is None or not live.breaker.allow():
                wait = live.breaker.retry_after() if live.secret is not None else None
                await wait_for_event(live.breaker_changed, wait or self.config.timeout)
            try:
                await self._attempt(live, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # never lose the worker; the delivery is tried again later
                log.exception("webhook attempt crashed for %s", delivery.id)
                self._release_later(live, delivery, 1.0)

    async def _attempt(self, live: LiveSubscription, delivery: QueuedDelivery) -> None:
        document = live.document
        assert live.secret is not None  # workers wait while it cannot be opened
        started = time.perf_counter()
        result = await self.sender.send(document["url"], live.secret, delivery)
        WEBHOOK_LATENCY.observe(time.perf_counter() - started)
        now = datetime.now(UTC)
        delivery.attempts += 1
        recorded: Document = {
            "attempts": delivery.attempts,
            "last_attempt_at": now,
            "last_status_code": result.status_code,
            "last_error": result.error,
        }
        if result.ok:
            live.breaker.record_success()
            self._finish(live, delivery, DeliveryStatus.DELIVERED, recorded, now)
            WEBHOOK_ATTEMPTS.labels("delivered").inc()
            return
        live.breaker.record_failure()
        delay = (
            next_attempt_delay(delivery.attempts, self.config.retry_schedule)
            if result.retryable
            else None
        )
        if delay is None:
            self._finish(live, delivery, DeliveryStatus.FAILED, recorded, now)
            WEBHOOK_ATTEMPTS.labels("failed").inc()
            return
        next_at = now + timedelta(seconds=delay)
        self.writer.record(delivery.id, {"$set": {**recorded, "next_attempt_at": next_at}})
        WEBHOOK_ATTEMPTS.labels("retry").inc()
        self._release_later(live, delivery, delay)

    def _finish(
        self,
        live: LiveSubscription,
        delivery: QueuedDelivery,
        status: DeliveryStatus,
        recorded: Document,
        now: datetime,
    ) -> None:
        update: Document = {"$set": {**recorded, "status": status}}
        if status == DeliveryStatus.DELIVERED:
            update["$set"]["delivered_at"] = now
            update["$unset"] = {"body": "", "next_attempt_at": ""}
        else:
            update["$unset"] = {"next_attempt_at": ""}
        self.writer.record(delivery.id, update)
        live.queues.done(delivery)
        WEBHOOK_QUEUED.dec()
        if live.spilled and not live.queues:
            self._spawn(self.reload(live))

    def _release_later(
        self, live: LiveSubscription, delivery: QueuedDelivery, delay: float
    ) -> None:
        delivery.not_before = None

        def release() -> None:
            live.timers.discard(timer)
            live.queues.release(delivery.dossier_code)
            live.wakeup.set()

        timer = asyncio.get_running_loop().call_later(delay, release)
        live.timers.add(timer)

    # ------------------------------------------------------------------ breaker

    def _on_breaker(self, subscription_id: str, state: BreakerState) -> None:
        live = self.live.get(subscription_id)
        if live is None:
            return
        live.breaker_changed.set()  # wakes the workers waiting now ...
        live.breaker_changed.clear()  # ... and not those that wait later
        if live.secret is None:
            return  # paused for its secret whatever the breaker says
        if state == BreakerState.OPEN:
            paused = live.document.get("status") != SubscriptionStatus.PAUSED
            if paused:
                log.warning("webhook subscription %s paused: subscriber unhealthy", live.id)
            self._set_status(live, SubscriptionStatus.PAUSED, PAUSED_BY_BREAKER)
            self._set_paused_metric(live, True)
        elif state == BreakerState.CLOSED:
            if live.document.get("status") == SubscriptionStatus.PAUSED:
                log.info("webhook subscription %s resumed", live.id)
                self._set_status(live, SubscriptionStatus.ACTIVE)
            self._set_paused_metric(live, False)

    def _set_status(
        self, live: LiveSubscription, status: SubscriptionStatus, reason: str | None = None
    ) -> None:
        current = (live.document.get("status"), live.document.get("pause_reason"))
        if status == SubscriptionStatus.PAUSED:
            if current == (status, reason):
                return
            fields: Document = {"status": status, "pause_reason": reason}
            if current[0] != status:
                fields["paused_at"] = datetime.now(UTC)
        elif current[0] == status:
            return
        else:
            fields = {"status": status}
        live.document.update(fields)
        self._spawn(self.store.update_subscription(live.id, fields))

    def _set_paused_metric(self, live: LiveSubscription, paused: bool | None) -> None:
        labels = (live.id, str(live.document.get("agency_id", "")))
        if paused is not None:
            WEBHOOK_PAUSED.labels(*labels).set(1 if paused else 0)
            return
        with suppress(KeyError):
            WEBHOOK_PAUSED.remove(*labels)

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> int:
        return await self.writer.flush()

    async def close(self) -> None:
        for live in list(self.live.values()):
            await self._stop(live)
        self.live.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.writer.flush()
        await self.sender.close()


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _delivery_document(
    live: LiveSubscription, delivery: QueuedDelivery, event: PublicDossierStatus, now: datetime
) -> Document:
    return {
        "_id": delivery.id,
        "subscription_id": live.id,
        "agency_id": live.document.get("agency_id"),
        "event_id": delivery.event_id,
        "event_type": event.action,
        "dossier_code": delivery.dossier_code,
        "occurred_at": event.occurred_at,
        "partition": delivery.partition,
        "seq": delivery.seq,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        "body": delivery.body,
    }

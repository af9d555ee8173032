"""Delivering citizen messages (the service layer's delivery engine): persist first, then send
from a worker pool, exactly one effect per event and channel, bounded retries, fallback to the
next channel, final outcomes published.

Flow (GOV.UK Notify's habit: persist, enqueue only the id, let the worker re-read state):

1. `create_message` inserts the delivery record of the first channel (`_id` = notification id
   derived from source event id + channel, unique) and queues its id. A redelivered event hits
   the unique key and sends nothing. When a worker of this process will take it soon (fewer
   than one round of workers, `RetryConfig.workers`, waits in the queue), the record is
   written already claimed for it (`sending`, first attempt, a lease; `_claimed`), and the
   worker sends from it without a claim of its own; otherwise it is written `created`, due now.
2. A worker `claim`s the record (compare-and-set to `sending`, one more attempt, a lease), sends
   through the guarded channel with the notification id as idempotency key, then writes the
   outcome conditioned on its claim:
   - accepted: `sent` (SMS: waits for the receipt) or `delivered` (inbox); e-mail's `sent` is final;
   - transient failure below the bound: back to `created` with `next_attempt_at` = now + backoff
     (exponential, jittered) — the consumer is never blocked by a retry;
   - transient failure at the bound: `technical-failure`; permanent failure: `permanent-failure`;
     both fall back to the next channel of the citizen's order.
3. Each final outcome is written together with its `DossierNotified` event in the record's outbox
   (one single-document update); the `OutboxRelay` publishes it.
4. A poller re-queues due retries, records whose worker died (expired lease) and fallbacks
   interrupted between their two writes.

A graceful stop gives back the claims of records written claimed and not sent yet (`stop`); after
a crash they are sent once their lease expires, like an interrupted send. Only as many records
are written claimed as the workers take within about one send each (at most twice the number of
workers at once), so that a crash leaves few of them waiting on a lease.

Exactly-once window: a crash after the provider accepted a message but before `sent` was written
leaves the record `sending`; after the lease it is sent again with the SAME notification id. The
SMS gateway deduplicates on `Idempotency-Key`, so no second SMS; SMTP has no such key, so an
e-mail may go twice in that window (same Message-ID, which mail clients collapse).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notification import metrics
from services.notification.citizens.adapters.guard import BreakerOpenError
from services.notification.citizens.adapters.templates import RenderedMessage
from services.notification.citizens.domain import delivery
from services.notification.citizens.domain.delivery import notification_id
from services.notification.citizens.domain.ports import (
    Channel,
    Document,
    MessageStore,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
)
from services.notification.citizens.domain.routing import Hop, next_hop
from services.notification.domain.retry import RetryConfig, backoff
from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierNotified
from shared.runtime.logging import log_context, mask
from shared.runtime.outbox import (
    OUTBOX_FIELD,
    OutboxRelay,
    merge_updates,
    outbox_update,
    pushed_outbox,
)
from shared.runtime.work_pool import WorkPool

log = logging.getLogger(__name__)

SOURCE = "/dvc/notification"


def _now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(
        self,
        store: MessageStore,
        channels: Mapping[str, Channel],
        *,
        notified_topic: str,
        retry: RetryConfig,
        relay: OutboxRelay | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.channels = channels
        self.notified_topic = notified_topic
        self.retry = retry
        self.relay = relay
        self._clock = clock
        # Written claimed for a worker (`_create_delivery`), not taken by one yet.
        self._claimed: dict[str, Document] = {}
        # Of those, the ones whose insert is still in flight (not queued for the workers yet).
        self._inserting = 0
        # Never two sends of one delivery in this process (across replicas the claim's
        # compare-and-set decides; see `claim` in the store).
        self.pool = WorkPool(
            "notification",
            process=self.process,
            poll=self.poll_once,
            workers=retry.workers,
            poll_interval=retry.poll_interval,
            max_poll_interval=retry.max_poll_interval,
            max_queued=50_000,
        )

    # ------------------------------------------------------------------ creating

    async def create_message(
        self,
        *,
        source_event_id: str,
        dossier_code: str,
        unit_code: str | None,
        rendered: RenderedMessage,
        hops: Sequence[Hop],
    ) -> bool:
        """Persist the first delivery of a message; False if the event was handled before."""
        now = self._clock()
        first = hops[0]
        document = {
            "source_event_id": source_event_id,
            "dossier_code": dossier_code,
            "unit_code": unit_code,
            "template": rendered.template,
            "locale": rendered.locale,
            "title": rendered.title,
            "body": rendered.body,
            "email_body": rendered.email_body,
            "sms_text": rendered.sms.text,
            "sms_encoding": rendered.sms.encoding,
            "sms_segments": rendered.sms.segments,
            "hops": [{"channel": h.channel, "address": h.address} for h in hops],
            "created_at": now,
        }
        created = await self._create_delivery(document, first, now)
        if not created:
            metrics.EVENTS_SKIPPED.labels("duplicate").inc()
        return created

    async def _create_delivery(
        self, message: Document, hop: Hop, now: datetime, fallback_of: str | None = None
    ) -> bool:
        nid = notification_id(message["source_event_id"], hop.channel)
        # A worker takes it soon (fewer than one round of them waits in the queue): written
        # claimed for it, it needs no claim of its own. (`_inserting` counts those written
        # claimed and not queued yet, so that they are not counted free twice.)
        soon = self.pool.free + self.retry.workers > self._inserting
        claim = uuid.uuid4().hex if soon else None
        document = {
            **{k: v for k, v in message.items() if k in _MESSAGE_FIELDS},
            "_id": nid,
            "channel": hop.channel,
            "address": hop.address,
            "status": delivery.CREATED,
            "attempts": 0,
            "next_attempt_at": now,
            "lease_until": None,
            "claim": None,
            "created_at": now,
            "updated_at": now,
            "fallback_of": fallback_of,
            "fallback_pending": False,
        }
        if claim is not None:
            lease_until = now + timedelta(seconds=self.retry.lease)
            claimed = {"status": delivery.SENDING, "attempts": 1, "claim": claim}
            document.update(claimed, lease_until=lease_until)
            self._claimed[nid] = document
        created = False
        self._inserting += claim is not None
        try:
            created = await self.store.create_delivery(document)
        finally:
            self._inserting -= claim is not None
            if claim is not None and not created:
                self._claimed.pop(nid, None)
        if not created:
            return False
        metrics.MESSAGES.labels(hop.channel, delivery.CREATED).inc()
        self.submit(nid)
        return True

    # ------------------------------------------------------------------ sending

    def submit(self, nid: str) -> None:
        """Queue a delivery for the workers (the poller finds it anyway if the queue is full)."""
        self.pool.submit(nid)

    async def process(self, nid: str) -> None:
        """Claim one due delivery (or take the one written claimed) and attempt it once."""
        now = self._clock()
        taken = self._claimed.pop(nid, None)
        if taken is not None and now < taken["lease_until"]:
            document, claim = taken, taken["claim"]
        else:
            claim = uuid.uuid4().hex
            lease = timedelta(seconds=self.retry.lease)
            claimed = await self.store.claim(nid, now, lease, claim)
            if claimed is None:
                return  # not due, already done, or another worker has it
            document = claimed
        with log_context(dossier_code=document["dossier_code"]):
            await self._attempt(document, claim)

    async def _attempt(self, document: Document, claim: str) -> None:
        channel_name = document["channel"]
        channel = self.channels[channel_name]
        message = OutgoingMessage(
            notification_id=document["_id"],
            dossier_code=document["dossier_code"],
            address=document["address"],
            title=document["title"],
            text=_text_for(document),
        )
        owned = {"_id": document["_id"], "status": delivery.SENDING, "claim": claim}
        try:
            result = await channel.send(message)
        except PermanentSendError as exc:
            log.warning("%s to %s refused: %s", channel_name, mask(document["address"]), exc)
            await self._fail(document, owned, delivery.PERMANENT_FAILURE, str(exc))
            return
        except Exception as exc:  # transient (incl. an open breaker) or unexpected
            await self._transient(document, owned, exc)
            return
        await self._accepted(document, owned, result)

    async def _accepted(self, document: Document, owned: Document, result: SendResult) -> None:
        now = self._clock()
        status = result.status
        update: Document = {
            "$set": {
                "status": status,
                "sent_at": now,
                "updated_at": now,
                "provider_reference": result.provider_reference,
                "lease_until": None,
                "last_error": None,
            }
        }
        final = delivery.is_final(status, document["channel"])
        if final:
            update = merge_updates(update, self._notified(document, status, now))
        if not (final and self.relay):
            if not await self.store.update_where(owned, update):
                return  # a receipt overtook us, or we lost the claim: the newer state stands
            metrics.MESSAGES.labels(document["channel"], status).inc()
            return
        # The outcome with its event, claimed for this process's relay, which publishes it
        # without claiming and reading it again. The outbox was empty when claimed (the usual
        # case), so it now holds just this event and needs no reading back; otherwise it is read
        # back in the same round trip.
        update = merge_updates(update, {"$set": self.relay.handover_claim()})
        if document.get(OUTBOX_FIELD):
            written = await self.store.update_and_read(owned, update)
        elif await self.store.update_where(owned, update):
            written = pushed_outbox(document["_id"], update)
        else:
            written = None
        if written is None:
            return
        metrics.MESSAGES.labels(document["channel"], status).inc()
        self.relay.hand_over(written)

    async def _transient(self, document: Document, owned: Document, error: Exception) -> None:
        attempts = document["attempts"]
        reason = "breaker-open" if isinstance(error, BreakerOpenError) else "error"
        text = str(error) or type(error).__name__
        if attempts >= self.retry.max_attempts:
            await self._fail(document, owned, delivery.TECHNICAL_FAILURE, text)
            return
        delay = backoff(attempts, base=self.retry.base_delay, cap=self.retry.max_delay)
        if isinstance(error, BreakerOpenError):
            delay = max(delay, min(error.retry_after, self.retry.max_delay))
        now = self._clock()
        retried = await self.store.update_where(
            owned,
            {
                "$set": {
                    "status": delivery.CREATED,
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "lease_until": None,
                    "last_error": text[:500],
                    "updated_at": now,
                }
            },
        )
        if retried:
            self.pool.due_at(now + timedelta(seconds=delay))  # the poller re-queues it then
            metrics.RETRIES.labels(document["channel"], reason).inc()
            log.info(
                "%s attempt %d failed (%s); retry in %.2fs",
                document["channel"],
                attempts,
                text,
                delay,
            )

    async def _fail(
        self, document: Document, document_filter: Document, status: str, error: str
    ) -> None:
        """Final failure on this channel: record it with its notified event, then fall back."""
        now = self._clock()
        hop = next_hop(_hops(document), document["channel"])
        update = merge_updates(
            {
                "$set": {
                    "status": status,
                    "final_at": now,
                    "updated_at": now,
                    "lease_until": None,
                    "last_error": error[:500],
                    "fallback_pending": hop is not None,
                }
            },
            self._notified(document, status, now),
        )
        if not await self.store.update_where(document_filter, update):
            return
        metrics.MESSAGES.labels(document["channel"], status).inc()
        log.warning("%s delivery ended in %s: %s", document["channel"], status, error)
        if self.relay:
            self.relay.poke(document["_id"])
        if hop is not None:
            self.pool.pacer.due_in(self._fallback_grace())  # the poller clears the flag then
            await self._fall_back(document, hop)

    async def _fall_back(self, document: Document, hop: Hop) -> None:
        """Create the next channel's delivery (idempotent). The failed record's
        `fallback_pending` flag is cleared later by the poller, not here: a second write right
        after the first would race the outbox relay working on the same document."""
        created = await self._create_delivery(
            document, hop, self._clock(), fallback_of=document["_id"]
        )
        if created:
            metrics.FALLBACKS.labels(document["channel"], hop.channel).inc()
            log.info("falling back from %s to %s", document["channel"], hop.channel)

    def _notified(self, document: Document, status: str, now: datetime) -> dict[str, Any]:
        inbox = document["channel"] == "inbox"
        event = DossierNotified(
            dossier_code=document["dossier_code"],
            occurred_at=now,
            notification_id=document["_id"],
            source_event_id=document["source_event_id"],
            channel=document["channel"],
            status=status,
            template=document["template"],
            title=document["title"] if inbox else None,
            body=document["body"] if inbox else None,  # never contact details
        )
        return outbox_update([(self.notified_topic, wrap(event, SOURCE))])

    # ------------------------------------------------------------------ receipts

    async def apply_receipt(self, nid: str, *, delivered: bool, error: str | None) -> str:
        """An SMS gateway receipt: `delivered`, or `permanent-failure` and fallback. Returns the
        outcome for metrics: delivered, failed, duplicate or unknown."""
        document = await self.store.delivery(nid)
        if document is None or document["channel"] != "sms":
            return "unknown"
        if document["status"] in delivery.FINAL:
            return "duplicate"
        awaiting = {"_id": nid, "status": {"$in": [delivery.SENDING, delivery.SENT]}}
        with log_context(dossier_code=document["dossier_code"]):
            if not delivered:
                await self._fail(
                    document, awaiting, delivery.PERMANENT_FAILURE, error or "not delivered"
                )
                return "failed"
            now = self._clock()
            update = merge_updates(
                {
                    "$set": {
                        "status": delivery.DELIVERED,
                        "final_at": now,
                        "updated_at": now,
                        "lease_until": None,
                    }
                },
                self._notified(document, delivery.DELIVERED, now),
            )
            if not await self.store.update_where(awaiting, update):
                return "duplicate"
            metrics.MESSAGES.labels("sms", delivery.DELIVERED).inc()
            if self.relay:
                self.relay.poke(nid)
            return "delivered"

    # ------------------------------------------------------------------ workers

    async def poll_once(self) -> int:
        """Queue due retries and orphaned sends; finish interrupted fallbacks."""
        now = self._clock()
        ids = await self.store.due_ids(now, limit=1000)
        for nid in ids:
            self.submit(nid)
        grace = now - timedelta(seconds=self._fallback_grace())
        for document in await self.store.pending_fallbacks(grace):
            hop = next_hop(_hops(document), document["channel"])
            if hop is not None:
                await self._fall_back(document, hop)  # a no-op unless it was interrupted
            await self.store.update_where(
                {"_id": document["_id"]}, {"$set": {"fallback_pending": False}}
            )
        return len(ids)

    def _fallback_grace(self) -> float:
        """How long a fallback may take between its two writes before the poller finishes it."""
        return max(5 * self.retry.poll_interval, 1.0)

    def start(self) -> None:
        self.pool.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let in-flight sends finish (up to `grace` seconds), then stop.
        An abandoned send stays `sending` and is taken over after its lease."""
        await self.pool.stop(grace)
        await self._give_back_claims()

    async def _give_back_claims(self) -> None:
        """Records written claimed that no worker took: `created` again, due now, so that the
        next process sends them at once rather than after their lease."""
        taken, self._claimed = self._claimed, {}
        try:
            for document in taken.values():
                await self._give_back(document)
        except Exception as exc:  # the database is away: their leases end, then they are sent
            log.warning("claims of %d unsent deliveries not given back: %s", len(taken), exc)

    async def _give_back(self, document: Document) -> None:
        await self.store.update_where(
            {"_id": document["_id"], "status": delivery.SENDING, "claim": document["claim"]},
            {
                "$set": {
                    "status": delivery.CREATED,
                    "claim": None,
                    "lease_until": None,
                    "next_attempt_at": document["next_attempt_at"],
                },
                "$inc": {"attempts": -1},
            },
        )


_MESSAGE_FIELDS = frozenset(
    {
        "source_event_id",
        "dossier_code",
        "unit_code",
        "template",
        "locale",
        "title",
        "body",
        "email_body",
        "sms_text",
        "sms_encoding",
        "sms_segments",
        "hops",
    }
)


def _hops(document: Document) -> list[Hop]:
    return [Hop(h["channel"], h["address"]) for h in document.get("hops", [])]


def _text_for(document: Document) -> str:
    return {
        "sms": document["sms_text"],
        "email": document["email_body"],
    }.get(document["channel"], document["body"])

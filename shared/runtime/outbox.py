"""Persist, then publish: the transactional outbox inside the document it announces.

A state change and the events announcing it are written in ONE single-document update (works on
MongoDB and FerretDB alike, no transactions): `outbox_update(...)` returns the update fragment to
merge into that write. The `OutboxRelay` publishes pending events in order, then removes them.
A crash between publishing and removing republishes on restart (same event ids, so consumers
deduplicate); nothing is lost.

Several replicas may run a relay: a document is claimed with a short lease before its events are
published, so replicas rarely publish the same events twice (and when a lease expires mid-publish,
duplicates carry the same ids). The write that adds the events can claim the document itself
(`handover_claim`) and hand it, as written, to this process's relay (`hand_over`): published
without a claim and a read, one round trip fewer; if the process dies first, the claim lapses
after `HANDOVER_LEASE` and any relay publishes the events. Handed-over documents are published at
once and their outboxes emptied together a little later (`empty_delay`): at a steady trickle of
requests, one bulk write for several instead of one each.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from shared.contracts.cloudevents import CloudEvent
from shared.runtime.background import Pacer, cancel_and_wait
from shared.runtime.kafka import publish_cloud_event
from shared.runtime.mongo import bulk_write_in_chunks

log = logging.getLogger(__name__)

OUTBOX_FIELD = "outbox"
PENDING_FIELD = "outbox_pending"
LEASE_FIELD = "outbox_lease_until"
LEASE_OWNER_FIELD = "outbox_lease_owner"
# A bound on one pass, so that a document that cannot be cleared never spins the relay.
MAX_BATCHES_PER_PASS = 1000
# How long a document handed over by its writer stays this relay's (a crash delays its events
# by at most this much; a relay still busy after it may see another publish them too).
HANDOVER_LEASE = timedelta(seconds=5)


def outbox_entry(topic: str, event: CloudEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "topic": topic,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "time": event.time,
        "data": event.data.decode(),
    }


def outbox_update(events: Sequence[tuple[str, CloudEvent]]) -> dict[str, Any]:
    """The `$push`/`$set` parts to merge into the write that makes the change."""
    return {
        "$push": {OUTBOX_FIELD: {"$each": [outbox_entry(topic, e) for topic, e in events]}},
        "$set": {PENDING_FIELD: True},
    }


def pushed_outbox(document_id: Any, update: dict[str, Any]) -> dict[str, Any]:
    """The document to `OutboxRelay.hand_over` after `update` (with an `outbox_update` merged
    in) was applied to a document whose outbox was empty: its `_id` and the events pushed."""
    return {"_id": document_id, OUTBOX_FIELD: list(update["$push"][OUTBOX_FIELD]["$each"])}


def merge_updates(*updates: dict[str, Any]) -> dict[str, Any]:
    """Merge MongoDB update documents operator by operator (`$set` with `$set`, ...)."""
    merged: dict[str, dict[str, Any]] = {}
    for update in updates:
        for operator, fields in update.items():
            merged.setdefault(operator, {}).update(fields)
    return merged


# Every relay query starts with `outbox_pending: true` (or `_id`): declare this index on each
# collection a relay publishes from (in its store's `INDEXES`).
OUTBOX_INDEX = IndexModel([(PENDING_FIELD, ASCENDING)])


def _cloud_event(entry: dict[str, Any]) -> CloudEvent:
    time = entry["time"]
    if time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    return CloudEvent(
        id=entry["id"],
        type=entry["type"],
        source=entry["source"],
        subject=entry["subject"],
        time=time,
        data=entry["data"].encode(),
    )


class OutboxRelay:
    """Publishes the pending events of one collection; an in-process wake-up plus a scan that
    backs off from `poll_interval` to `max_poll_interval` while it finds nothing."""

    def __init__(
        self,
        collection: AsyncCollection[Any],
        broker: KafkaBroker,
        *,
        poll_interval: float = 1.0,
        max_poll_interval: float | None = None,
        lease: timedelta = timedelta(seconds=30),
        batch_size: int = 100,
        empty_delay: float = 0.25,
    ) -> None:
        """`empty_delay`: how long the outboxes of handed-over documents may stay full after
        their events went out, so that those of several documents are emptied in one bulk write
        (at most `batch_size` wait; well below `HANDOVER_LEASE`)."""
        self.collection = collection
        self.broker = broker
        self.poll_interval = poll_interval
        self.lease = lease
        self.batch_size = batch_size
        self.empty_delay = empty_delay
        self._owner = uuid.uuid4().hex
        self.pacer = Pacer(poll_interval, max_poll_interval)
        self._poked: set[Any] = set()
        self._handed: list[dict[str, Any]] = []
        self._published: list[dict[str, Any]] = []  # handed, sent, outboxes not emptied yet
        self._emptier: asyncio.Task[None] | None = None
        self._scan_requested = False
        self._task: asyncio.Task[None] | None = None

    def poke(self, document_id: Any = None) -> None:
        """Publish soon: call after writing a document with pending events. Naming the document
        lets the relay fetch it by `_id` instead of scanning for pending documents (a scan is
        cheap on MongoDB with the index, a full collection read on FerretDB)."""
        if document_id is None:
            self._scan_requested = True
        else:
            self._poked.add(document_id)
        self.pacer.wake()

    def handover_claim(self) -> dict[str, Any]:
        """Fields to set in the write that adds events: the document is this relay's for
        `HANDOVER_LEASE`. Then `hand_over` the document as written."""
        # Its own owner name: this relay's scans, which take its interrupted claims back, must
        # leave a handed document to `hand_over` (or publish it twice).
        return {
            LEASE_FIELD: datetime.now(UTC) + HANDOVER_LEASE,
            LEASE_OWNER_FIELD: f"{self._owner}:handover",
        }

    def hand_over(self, document: dict[str, Any]) -> None:
        """Publish the events of `document`, written with `handover_claim` and holding its whole
        outbox (an insert, the document an update returned, or `pushed_outbox`), without
        claiming or reading it again."""
        self._handed.append(document)
        self.pacer.wake()

    async def publish_pending(self) -> int:
        """Publish every pending event once; returns how many were published."""
        return await self._publish_claimed(self._claim_batch)

    async def publish_documents(self, document_ids: Iterable[Any]) -> int:
        """Publish the pending events of the named documents (found by `_id`)."""
        ids = list(document_ids)

        async def claim_named() -> list[dict[str, Any]]:
            nonlocal ids
            batch, ids = ids[: self.batch_size], ids[self.batch_size :]
            return [d for d in await asyncio.gather(*(self._claim_one(i) for i in batch)) if d]

        return await self._publish_claimed(claim_named)

    async def _claim_one(self, document_id: Any) -> dict[str, Any] | None:
        """Claim one document and read it in the same round trip (None: nothing pending, or
        leased by another relay). The whole document: FerretDB 1.24's findAndModify takes no
        projection."""
        now = datetime.now(UTC)
        return await self.collection.find_one_and_update(
            {"_id": document_id, PENDING_FIELD: True, **self._free(now)},
            {"$set": {LEASE_FIELD: now + self.lease, LEASE_OWNER_FIELD: self._owner}},
            return_document=ReturnDocument.AFTER,
        )

    def _free(self, now: datetime) -> dict[str, Any]:
        # Free: never leased, lease expired, or leased by this very relay (e.g. a pass that was
        # interrupted by shutdown, before the final flush).
        return {
            "$or": [
                {LEASE_FIELD: None},
                {LEASE_FIELD: {"$lt": now}},
                {LEASE_OWNER_FIELD: self._owner},
            ]
        }

    async def _publish_claimed(self, claim: Callable[[], Awaitable[list[dict[str, Any]]]]) -> int:
        published = 0
        for _ in range(MAX_BATCHES_PER_PASS):
            claimed = await claim()
            if not claimed:
                break
            # Every published outbox emptied in one bulk write.
            sent, failures = await self._publish_each(claimed)
            try:
                await self._empty_outboxes(sent)
                published += sum(len(d.get(OUTBOX_FIELD) or []) for d in sent)
            except Exception as exc:
                failures += [exc] * len(sent)
            if failures:
                # Those documents keep their lease and are retried when it expires.
                log.warning("outbox: %d documents not published: %r", len(failures), failures[0])
                self.pacer.due_in(self.lease.total_seconds())  # scanned when their lease ends
                if len(failures) == len(claimed):
                    break
        return published

    async def _publish_each(
        self, documents: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[BaseException]]:
        """Publish the documents in parallel (their events in order within each), so that
        broker round trips overlap; returns those sent and the failures."""
        results = await asyncio.gather(
            *(self._publish_events(d) for d in documents), return_exceptions=True
        )
        sent = [d for d, r in zip(documents, results, strict=True) if r is None]
        return sent, [r for r in results if isinstance(r, BaseException)]

    async def _publish_handed(self, documents: list[dict[str, Any]]) -> None:
        """Publish handed-over documents at once; empty their outboxes when `batch_size` are
        waiting or `empty_delay` after the first (one bulk write for the documents of a few
        requests or batches instead of one each; their lease keeps other relays off meanwhile)."""
        sent, failures = await self._publish_each(documents)
        if failures:  # those keep their lease and are published by a scan when it ends
            log.warning("outbox: %d documents not published: %r", len(failures), failures[0])
            self.pacer.due_in(HANDOVER_LEASE.total_seconds())
        self._published += sent
        if len(self._published) >= self.batch_size:
            await self._empty_published()
        elif self._published and self._emptier is None:
            self._emptier = asyncio.create_task(self._empty_later())

    async def _empty_later(self) -> None:
        try:
            await asyncio.sleep(self.empty_delay)
            await self._empty_published()
        finally:
            self._emptier = None

    async def _empty_published(self) -> None:
        documents, self._published = self._published, []
        try:
            await self._empty_outboxes(documents)
        except Exception as exc:  # their lease ends and a scan publishes them again
            log.warning("outbox: %d outboxes not emptied: %r", len(documents), exc)
            self.pacer.due_in(HANDOVER_LEASE.total_seconds())

    async def _claim_batch(self) -> list[dict[str, Any]]:
        """Claim up to `batch_size` pending documents whose lease is free: one indexed read of
        candidates, then each claimed and read by `_id` (concurrently). Every command is pushed
        down whole on FerretDB, its limit included, so a batch costs the same however many
        documents are pending. A filter FerretDB cannot push down (the lease's `$or`, an `_id`
        `$in`) made it read every pending document three times per batch: 10,000 pending took
        44-85 s to drain instead of 35-39 s (`bench/bench_outbox.py`)."""
        now = datetime.now(UTC)
        candidates = [
            d
            async for d in self.collection.find(
                {PENDING_FIELD: True}, {LEASE_FIELD: 1, LEASE_OWNER_FIELD: 1}
            ).limit(self.batch_size)
        ]
        free = [d["_id"] for d in candidates if self._is_free(d, now)]
        if len(candidates) == self.batch_size and len(free) < len(candidates):
            # Documents leased elsewhere (another replica's pass) may hide free ones behind
            # them: look past them, with the filter FerretDB reads every pending document for.
            query = {PENDING_FIELD: True, **self._free(now)}
            found = self.collection.find(query, {"_id": 1}).limit(self.batch_size)
            free = [d["_id"] async for d in found]
        claimed = await asyncio.gather(*(self._claim_one(i) for i in free))
        return [d for d in claimed if d]

    def _is_free(self, document: dict[str, Any], now: datetime) -> bool:
        """`_free` in Python (for candidates read without it)."""
        until = document.get(LEASE_FIELD)
        return until is None or until < now or document.get(LEASE_OWNER_FIELD) == self._owner

    async def _publish_events(self, document: dict[str, Any]) -> None:
        for entry in document.get(OUTBOX_FIELD) or []:  # in order: a dossier's events keep it
            await publish_cloud_event(self.broker, entry["topic"], _cloud_event(entry))

    async def _empty_outboxes(self, documents: list[dict[str, Any]]) -> None:
        """Remove the published events from their documents and release them. Usually nothing
        was appended meanwhile: each outbox is emptied by a compare-and-set on its content, all
        in one bulk write."""
        if not documents:
            return
        released = {LEASE_FIELD: None, LEASE_OWNER_FIELD: None}
        emptied = await bulk_write_in_chunks(
            self.collection,
            [
                UpdateOne(
                    {"_id": d["_id"], OUTBOX_FIELD: d.get(OUTBOX_FIELD) or []},
                    {"$set": {OUTBOX_FIELD: [], PENDING_FIELD: False, **released}},
                )
                for d in documents
            ],
        )
        if emptied == len(documents):
            return
        # Events were appended to some while publishing (they are pending again): remove just
        # ours from those still holding them. `$pull` of each whole entry as read: FerretDB
        # matches `$pull` values as exact documents (no conditions).
        ids = [d["_id"] for d in documents]
        holding = {
            d["_id"]: [e["id"] for e in d.get(OUTBOX_FIELD) or []]
            async for d in self.collection.find(
                {PENDING_FIELD: True, "_id": {"$in": ids}}, {OUTBOX_FIELD: 1}
            )
        }
        for document in documents:
            entries = document.get(OUTBOX_FIELD) or []
            if holding.get(document["_id"], [])[: len(entries)] != [e["id"] for e in entries]:
                continue  # emptied above
            for entry in entries:
                await self.collection.update_one(
                    {"_id": document["_id"]}, {"$pull": {OUTBOX_FIELD: entry}}
                )
            await self.collection.update_one({"_id": document["_id"]}, {"$set": released})
            # The events appended meanwhile: their writer's poke found the document leased.
            self.poke(document["_id"])

    async def run(self) -> None:
        """Named documents as soon as they are poked; a scan for any pending one (left by a
        crash, another replica, an unnamed poke) when the pacer's wait ends without a poke:
        `poll_interval` after a poke or a scan that found events, up to `max_poll_interval` while
        scans find none."""
        scan = True
        while True:
            try:
                handed, self._handed = self._handed, []
                if handed:
                    await self._publish_handed(handed)
                poked, self._poked = self._poked, set()
                if poked:
                    await self.publish_documents(poked)
                if scan or self._scan_requested:
                    self._scan_requested = False
                    self.pacer.record(await self.publish_pending())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                self.pacer.record(None)  # backs off while it keeps failing
                self._scan_requested = True  # poked documents may be left over
            scan = not await self.pacer.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-{self.collection.name}")

    async def stop(self, flush_timeout: float = 10.0) -> None:
        for task in (self._task, self._emptier):
            if task:
                await cancel_and_wait(task)
        self._task = self._emptier = None
        # Flush what is pending before the broker closes; what does not make it in time stays
        # pending in the database and goes out after the next start.
        handed, self._handed = self._handed, []
        try:
            await asyncio.wait_for(self._flush(handed), flush_timeout)
        except TimeoutError:
            log.warning("outbox flush of %s timed out; events stay pending", self.collection.name)

    async def _flush(self, handed: list[dict[str, Any]]) -> None:
        await self._publish_claimed(_once(handed))
        await self._empty_published()
        await self.publish_pending()


def _once(documents: list[dict[str, Any]]) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    """A claim that yields `documents` (already claimed) once."""
    remaining = [documents]

    async def claim() -> list[dict[str, Any]]:
        return remaining.pop() if remaining else []

    return claim


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)

"""Persist, then publish: the transactional outbox inside the document it announces.

A state change and the events announcing it are written in ONE single-document update (works on
MongoDB and FerretDB alike, no transactions): `outbox_update(...)` returns the update fragment to
merge into that write. The `OutboxRelay` publishes pending events in order, then removes them.
A crash between publishing and removing republishes on restart (same event ids, so consumers
deduplicate); nothing is lost.

Several replicas may run a relay: a document is claimed with a short lease before its events are
published, so replicas rarely publish the same events twice (and when a lease expires mid-publish,
duplicates carry the same ids).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from shared.cloudevents import CloudEvent
from shared.kafka import publish_cloud_event

log = logging.getLogger(__name__)

OUTBOX_FIELD = "outbox"
PENDING_FIELD = "outbox_pending"
LEASE_FIELD = "outbox_lease_until"


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


def merge_updates(*updates: dict[str, Any]) -> dict[str, Any]:
    """Merge MongoDB update documents operator by operator (`$set` with `$set`, ...)."""
    merged: dict[str, dict[str, Any]] = {}
    for update in updates:
        for operator, fields in update.items():
            merged.setdefault(operator, {}).update(fields)
    return merged


async def ensure_outbox_index(collection: AsyncCollection[Any]) -> None:
    await collection.create_index([(PENDING_FIELD, ASCENDING)])


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
    """Publishes the pending events of one collection; poll plus an in-process wake-up."""

    def __init__(
        self,
        collection: AsyncCollection[Any],
        broker: KafkaBroker,
        *,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(seconds=30),
        batch_size: int = 100,
    ) -> None:
        self.collection = collection
        self.broker = broker
        self.poll_interval = poll_interval
        self.lease = lease
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Publish soon: call after writing a document with pending events."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish every pending event once; returns how many were published."""
        published = 0
        done: set[Any] = set()  # a document is published at most once per pass
        while claimed := await self._claim_batch(exclude=done):
            for document in claimed:
                published += await self._publish_document(document)
                done.add(document["_id"])
        return published

    async def _claim_batch(self, exclude: set[Any]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        query: dict[str, Any] = {PENDING_FIELD: True}
        if exclude:
            query["_id"] = {"$nin": list(exclude)}
        projection = {"_id": 1, LEASE_FIELD: 1}
        candidates = self.collection.find(query, projection).limit(self.batch_size)
        claimed = []
        async for candidate in candidates:
            lease_until = candidate.get(LEASE_FIELD)
            if lease_until is not None and _aware(lease_until) > now:
                continue  # another relay is on it
            # Claim with a compare-and-set on the lease we saw, then re-read the events.
            result = await self.collection.update_one(
                {"_id": candidate["_id"], LEASE_FIELD: lease_until},
                {"$set": {LEASE_FIELD: now + self.lease}},
            )
            if result.modified_count == 1:
                document = await self.collection.find_one(
                    {"_id": candidate["_id"]}, {OUTBOX_FIELD: 1}
                )
                if document:
                    claimed.append(document)
        return claimed

    async def _publish_document(self, document: dict[str, Any]) -> int:
        entries = document.get(OUTBOX_FIELD) or []
        for entry in entries:  # in order: one dossier's events keep their order
            await publish_cloud_event(self.broker, entry["topic"], _cloud_event(entry))
        # `$pull` of each whole entry as read: FerretDB matches `$pull` values as exact documents
        # (no conditions such as `{"id": {"$in": [...]}}`), and MongoDB accepts that form too.
        for entry in entries:
            await self.collection.update_one(
                {"_id": document["_id"]}, {"$pull": {OUTBOX_FIELD: entry}}
            )
        await self.collection.update_one({"_id": document["_id"]}, {"$set": {LEASE_FIELD: None}})
        # Clear the flag only if nothing was appended meanwhile.
        await self.collection.update_one(
            {"_id": document["_id"], OUTBOX_FIELD: {"$size": 0}}, {"$set": {PENDING_FIELD: False}}
        )
        return len(entries)

    async def run(self) -> None:
        while True:
            try:
                await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-{self.collection.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.publish_pending()  # flush what is pending before the broker closes


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)

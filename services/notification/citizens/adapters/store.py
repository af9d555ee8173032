"""The citizen messages' MongoDB collections (in the notification service's database).

- `recipients`: contact details and channel order per dossier code, from the internal submitted
  event (personal data: never logged raw, never published).
- `deliveries`: one record per (source event, channel), `_id` = notification id, with the
  rendered message, status, attempts, retry schedule and the outbox of its notified events.
- `inbox`: portal inbox messages.

Single-document writes only (FerretDB and MongoDB alike): a status change and its notified event
are one update (`shared.runtime.outbox`); claims are compare-and-set on `status`/`claim`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notification.citizens.domain.delivery import CREATED, SENDING
from services.notification.citizens.domain.erasure import ERASABLE, FINISHED_AT
from shared.runtime.mongo import ensure_indexes
from shared.runtime.outbox import OUTBOX_INDEX
from shared.runtime.write_batching import WriteBatcher

Document = dict[str, Any]

# Every index of these collections (`shared.runtime.mongo.ensure_indexes`); repeated queries start
# with an equality on `_id` or on the first key of one of these.
INDEXES: dict[str, list[IndexModel]] = {
    # Finished dossiers' recipients not erased yet, by finish date (`adapters.erasure`).
    "recipients": [IndexModel([(ERASABLE, ASCENDING), (FINISHED_AT, ASCENDING)])],
    # One delivery per source event and channel: its `_id` derives from both
    # (`domain.delivery.notification_id`), so `_id`'s own index is the exactly-once key.
    "deliveries": [
        # The poller: retries due (`created`), and sends whose lease expired (`sending`).
        IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
        IndexModel([("status", ASCENDING), ("lease_until", ASCENDING)]),
        IndexModel([("dossier_code", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("fallback_pending", ASCENDING)]),
        OUTBOX_INDEX,
    ],
    "inbox": [IndexModel([("dossier_code", ASCENDING), ("created_at", DESCENDING)])],
}


class NotificationStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.recipients: AsyncCollection[Document] = db["recipients"]
        self.deliveries: AsyncCollection[Document] = db["deliveries"]
        self.inbox: AsyncCollection[Document] = db["inbox"]
        self._recipient_inserts = WriteBatcher(self.recipients)
        self._recipient_updates = WriteBatcher(self.recipients)
        self._delivery_inserts = WriteBatcher(self.deliveries)
        self._delivery_updates = WriteBatcher(self.deliveries)

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    # ------------------------------------------------------------------ recipients

    async def save_recipient(
        self, dossier_code: str, fields: Document, *, new: bool = False
    ) -> None:
        """Upsert the contact details of a dossier (a redelivered event writes the same); the
        dossiers a batch handles at the same time share one bulk write. A `new` one (its
        submission) is inserted as the upsert would write it, in the multi-row insert that
        simultaneous submissions share (an upsert is a read and a write on FerretDB), and
        upserted only when it exists already."""
        if new:
            try:
                await self._recipient_inserts.insert({"_id": dossier_code, **fields})
                return
            except DuplicateKeyError:
                pass  # a redelivered submission
        await self._recipient_updates.update({"_id": dossier_code}, {"$set": fields}, upsert=True)

    async def recipient(self, dossier_code: str) -> Document | None:
        return await self.recipients.find_one({"_id": dossier_code})

    # ------------------------------------------------------------------ deliveries

    async def create_delivery(self, document: Document) -> bool:
        """Insert a new delivery record; False when it exists already (redelivered event)."""
        try:
            await self._delivery_inserts.insert(document)
        except DuplicateKeyError:
            return False
        return True

    async def delivery(self, notification_id: str) -> Document | None:
        return await self.deliveries.find_one({"_id": notification_id})

    async def claim(
        self, notification_id: str, now: datetime, lease: timedelta, claim: str
    ) -> Document | None:
        """Take a due delivery for sending (or one whose sender's lease expired): status
        `sending`, one more attempt. None when it is not due or someone else has it.

        Atomic on MongoDB (findAndModify on one document). FerretDB 1.24's SQLite backend does
        NOT serialise concurrent conditional updates of one document (measured: 28 of 30
        trials of 8 concurrent claims let several win), so the notifier also never runs two
        claims of one id in one process; several replicas need real MongoDB."""
        return await self.deliveries.find_one_and_update(
            {
                "_id": notification_id,
                "$or": [
                    {"status": CREATED, "next_attempt_at": {"$lte": now}},
                    {"status": SENDING, "lease_until": {"$lte": now}},
                ],
            },
            {
                "$set": {
                    "status": SENDING,
                    "claim": claim,
                    "lease_until": now + lease,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def due_ids(self, now: datetime, limit: int) -> list[str]:
        """Retries that are due, then sends whose sender's lease expired: one query each, so that
        each starts with an indexed `status` equality (an `$or` would read every delivery)."""
        ids: list[str] = []
        for status, moment in ((CREATED, "next_attempt_at"), (SENDING, "lease_until")):
            if len(ids) >= limit:
                break
            cursor = self.deliveries.find(
                {"status": status, moment: {"$lte": now}}, {"_id": 1}
            ).limit(limit - len(ids))
            ids.extend([document["_id"] async for document in cursor])
        return ids

    async def update_where(self, document_filter: Document, update: Document) -> bool:
        """A compare-and-set update (`document_filter` names the `_id`); True when the document
        matched. The deliveries updated at the same time share one bulk write."""
        return await self._delivery_updates.update_if(document_filter, update)

    async def update_and_read(self, document_filter: Document, update: Document) -> Document | None:
        """A compare-and-set update returning the delivery as updated (one round trip)."""
        return await self.deliveries.find_one_and_update(
            document_filter, update, return_document=ReturnDocument.AFTER
        )

    async def pending_fallbacks(self, before: datetime, limit: int = 100) -> list[Document]:
        cursor = self.deliveries.find(
            {"fallback_pending": True, "updated_at": {"$lte": before}}
        ).limit(limit)
        return [document async for document in cursor]

    async def deliveries_for(self, dossier_code: str) -> list[Document]:
        cursor = self.deliveries.find({"dossier_code": dossier_code}).sort("created_at", ASCENDING)
        return [document async for document in cursor]

    async def inbox_for(self, dossier_code: str) -> list[Document]:
        cursor = self.inbox.find({"dossier_code": dossier_code}).sort("created_at", ASCENDING)
        return [document async for document in cursor]

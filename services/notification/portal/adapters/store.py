"""The portal sync's two MongoDB collections (in the notification service's database).

- `portal_dossiers` (`_id` = dossier code): the facts the events brought (`DossierRecord`), each
  event applied once (`shared.runtime.idempotency.apply_once`), `seq` bumped by each. Written only
  by the event handlers.
- `portal_sync` (`_id` = dossier code): where the portal stands — `status` (pending, waiting,
  synced, failed: `domain.sync_status`), `synced_seq` (the record version whose dossier message
  the portal accepted), `steps_sent` (step ids accepted), attempts, the retry schedule, the
  worker's lease, last error.

Why two: FerretDB does not serialise concurrent updates of one document (see
`NotificationStore.claim`), so the facts are never written by the worker; a lost write on
`portal_sync` only costs a resend (the portal upserts) or is caught by the worker re-reading
`seq` after it settles a dossier (see `PortalWorker`).

Hot paths touch one document by `_id`; the worker finds due dossiers with
`{status: pending, next_attempt_at <= now}` on a (status, next_attempt_at) index (MongoDB serves
both keys; FerretDB pushes the `status` equality down to the index and filters the range among the
pending dossiers), and the status counts are one `status` equality each.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notification.portal.domain.sync_status import PENDING, STATUSES
from shared.runtime.idempotency import apply_once
from shared.runtime.mongo import ensure_indexes

Document = dict[str, Any]

# Every index of the portal sync's collections (`shared.runtime.mongo.ensure_indexes`); repeated
# queries
# start with an equality on `_id` or on the first key of one of these.
INDEXES: dict[str, list[IndexModel]] = {
    "portal_sync": [IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)])],
}


class PortalStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.dossiers: AsyncCollection[Document] = db["portal_dossiers"]
        self.sync: AsyncCollection[Document] = db["portal_sync"]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    # ------------------------------------------------------------------ facts (handlers)

    async def record(self, code: str, event_id: str, update: Document) -> bool:
        """Apply one event's facts once; True when applied now."""
        update = {**update, "$inc": {**update.get("$inc", {}), "seq": 1}}
        return await apply_once(self.dossiers, {"_id": code}, event_id, update)

    async def facts(self, code: str) -> Document | None:
        return await self.dossiers.find_one({"_id": code}, {"applied_event_ids": 0})

    async def seq(self, code: str) -> int:
        document = await self.dossiers.find_one({"_id": code}, {"seq": 1})
        return int(document.get("seq", 0)) if document else 0

    async def mark_pending(self, code: str, now: datetime) -> None:
        """Something new to send: due now, a fresh retry budget (also for a failed dossier)."""
        update = {
            "$set": {"status": PENDING, "next_attempt_at": now, "attempts": 0, "updated_at": now},
            "$setOnInsert": {
                "synced_seq": 0,
                "steps_sent": [],
                "lease_until": None,
                "claim": None,
                "created_at": now,
            },
        }
        try:
            await self.sync.update_one({"_id": code}, update, upsert=True)
        except DuplicateKeyError:  # two first events raced on the upsert: the document exists
            await self.sync.update_one({"_id": code}, {"$set": update["$set"]})

    # ------------------------------------------------------------------ sync state (worker)

    async def claim(
        self, code: str, now: datetime, lease: timedelta, claim: str
    ) -> Document | None:
        """Take a due dossier for sending: a lease (also pushed into `next_attempt_at`, so the due
        query skips it meanwhile) and one more attempt. None when not due or leased elsewhere."""
        until = now + lease
        return await self.sync.find_one_and_update(
            {
                "_id": code,
                "status": PENDING,
                "next_attempt_at": {"$lte": now},
                "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
            },
            {
                "$set": {"claim": claim, "lease_until": until, "next_attempt_at": until},
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def update_owned(self, code: str, claim: str, update: Document) -> bool:
        """An update by the worker holding `claim`; False when it lost the claim."""
        result = await self.sync.update_one({"_id": code, "claim": claim}, update)
        return result.matched_count == 1

    async def due_codes(self, now: datetime, limit: int) -> list[str]:
        cursor = self.sync.find(
            {"status": PENDING, "next_attempt_at": {"$lte": now}}, {"_id": 1}
        ).limit(limit)
        return [document["_id"] async for document in cursor]

    async def sync_state(self, code: str) -> Document | None:
        return await self.sync.find_one({"_id": code})

    async def codes_with_status(self, status: str) -> list[str]:
        return [d["_id"] async for d in self.sync.find({"status": status}, {"_id": 1})]

    async def reset_for_resync(self, code: str, now: datetime) -> str:
        """Forget what the portal acknowledged, so that everything is sent again. Returns
        `reset`, `unknown`, or `busy` (a worker holds the dossier right now)."""
        result = await self.sync.update_one(
            {"_id": code, "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]},
            {
                "$set": {
                    "status": PENDING,
                    "synced_seq": 0,
                    "steps_sent": [],
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": None,
                    "claim": None,
                    "lease_until": None,
                    "updated_at": now,
                }
            },
        )
        if result.matched_count:
            return "reset"
        return "busy" if await self.sync.find_one({"_id": code}, {"_id": 1}) else "unknown"

    async def counts(self) -> dict[str, int]:
        """Dossiers per sync status (every status present, zeros included): one count per
        status, each on the indexed `status` (a `$group` over the collection would read it all)."""
        return {status: await self.sync.count_documents({"status": status}) for status in STATUSES}

"""The portal sync's MongoDB collection (in the notification service's database): one document per
dossier in `portal_dossiers` (`_id` = dossier code) holding

- the facts the events brought (`DossierRecord`), each event applied once
  (`shared.runtime.idempotency.apply_once`), `seq` bumped by each;
- where the portal stands: `status` (pending, waiting, synced, failed: `domain.sync_status`),
  `synced_seq` (the record version whose dossier message the portal accepted), `steps_sent` (step
  ids accepted), attempts, the retry schedule (`next_attempt_at`), the worker's lease and claim,
  last error.

One document, so an event's facts and its `pending` mark are one write, and the worker claims a
dossier and reads its facts in one `findAndModify`; when no worker holds the dossier, the event's
write claims it too (`record_and_claim`), and the worker starts from the document it returned. A
submission, usually a dossier's first event, inserts its document claimed instead: the inserts of
simultaneous submissions share one round trip.
This relies on single-document updates being atomic: true on MongoDB, and on devstack's
FerretDB, which runs the writes to each collection one at a time (devstack/ferretdb/patches/0004).
The sync state used to live in a second collection, `portal_sync`; `migrate_sync_collection`
merges it in once.

Hot paths touch one document by `_id`; the worker finds due dossiers with
`{status: pending, next_attempt_at <= now}` on a (status, next_attempt_at) index (MongoDB serves
both keys; FerretDB pushes the `status` equality down to the index and filters the range among the
pending dossiers), and the status counts are one `status` equality each.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notification.portal.domain.sync_status import PENDING, STATUSES
from shared.runtime.idempotency import apply_once, apply_once_and_read, first_applied
from shared.runtime.mongo import bulk_write_in_chunks, ensure_indexes
from shared.runtime.outbox import merge_updates
from shared.runtime.write_batching import WriteBatcher

Document = dict[str, Any]

COLLECTION = "portal_dossiers"
LEGACY_SYNC_COLLECTION = "portal_sync"  # the sync state's former collection (migrated at start)
# The sync state's fields (what `sync_state` answers and the migration carries over).
SYNC_FIELDS = (
    "status",
    "synced_seq",
    "steps_sent",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "claim",
    "last_error",
    "synced_at",
    "failed_at",
    "created_at",
    "updated_at",
)
MIGRATION_BATCH = 500

# Every index of the portal sync's collection (`shared.runtime.mongo.ensure_indexes`); repeated
# queries start with an equality on `_id` or on the first key of one of these.
INDEXES: dict[str, list[IndexModel]] = {
    COLLECTION: [IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)])],
}


def _lease_free(now: datetime) -> Document:
    return {"$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]}


def _claimed(now: datetime, lease: timedelta, claim: str) -> Document:
    """The sync fields of a dossier an event's write claims: leased to `claim`, one attempt."""
    until = now + lease
    return {"next_attempt_at": until, "attempts": 1, "claim": claim, "lease_until": until}


def _recorded(update: Document, now: datetime, sync: Document) -> Document:
    """An event's `update` with its mark: `seq` bumped, the dossier pending with the `sync`
    fields, the other sync fields' defaults when the write creates the document."""
    defaults = {
        "synced_seq": 0,
        "steps_sent": [],
        "lease_until": None,
        "claim": None,
        "created_at": now,
    }
    return merge_updates(
        update,
        {
            "$inc": {"seq": 1},
            "$set": {"status": PENDING, "updated_at": now, **sync},
            "$setOnInsert": {k: v for k, v in defaults.items() if k not in sync},
        },
    )


class PortalStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.dossiers: AsyncCollection[Document] = db[COLLECTION]
        self._owned_updates = WriteBatcher(self.dossiers)
        self._inserts = WriteBatcher(self.dossiers)

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    # ------------------------------------------------------------------ handlers

    async def record(self, code: str, event_id: str, update: Document, now: datetime) -> bool:
        """Apply one event's facts once and make the dossier pending (due now, a fresh retry
        budget, also for a failed dossier), in one write; True when applied now. A redelivered
        event changes nothing: its first delivery wrote the facts and the mark together."""
        update = _recorded(update, now, {"next_attempt_at": now, "attempts": 0})
        if await apply_once(self.dossiers, {"_id": code}, event_id, update):
            return True
        # The upsert met an existing document: one that lists the event (a redelivery), or, on
        # MongoDB, one that a concurrent first event of the dossier just inserted. Apply it there.
        return await apply_once(self.dossiers, {"_id": code}, event_id, update, upsert=False)

    async def record_and_claim(
        self,
        code: str,
        event_id: str,
        update: Document,
        now: datetime,
        lease: timedelta,
        claim: str,
        *,
        first: bool = False,
    ) -> Document | None:
        """`record` and `claim` in one `findAndModify`, when no worker holds the dossier: the
        event's facts, the dossier pending with one attempt and leased to `claim`; returns the
        document as written. None when a worker holds it or the event was applied before (the
        filter matches nothing and the upsert meets the existing `_id`): then `record` it.

        `first`: the dossier usually has no document yet (its submission): the document the
        upsert would write is inserted instead (the dossiers recorded at the same time share one
        insert); if it has one, the `findAndModify` follows."""
        update = _recorded(update, now, _claimed(now, lease, claim))
        if first:
            document = first_applied(code, event_id, update)
            try:
                await self._inserts.insert(document)
                return document
            except DuplicateKeyError:
                pass  # the dossier has a document already
        return await apply_once_and_read(
            self.dossiers, {"_id": code, **_lease_free(now)}, event_id, update
        )

    # ------------------------------------------------------------------ worker

    async def claim(
        self, code: str, now: datetime, lease: timedelta, claim: str
    ) -> Document | None:
        """Take a due dossier for sending: a lease (also pushed into `next_attempt_at`, so the due
        query skips it meanwhile) and one more attempt. Returns the whole document as claimed
        (facts and sync state; FerretDB 1.24 has no projection in findAndModify), None when not
        due or leased elsewhere."""
        until = now + lease
        return await self.dossiers.find_one_and_update(
            {"_id": code, "status": PENDING, "next_attempt_at": {"$lte": now}, **_lease_free(now)},
            {
                "$set": {"claim": claim, "lease_until": until, "next_attempt_at": until},
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def update_owned(
        self, code: str, claim: str, update: Document, *, seq: int | None = None
    ) -> bool:
        """An update by the worker holding `claim` (and, with `seq`, only if no event came in
        since the record was at that version); False when it matched nothing. The workers'
        updates at the same time share one bulk write."""
        owned: Document = {"_id": code, "claim": claim}
        if seq is not None:
            owned["seq"] = seq
        return await self._owned_updates.update_if(owned, update)

    async def due_codes(self, now: datetime, limit: int) -> list[str]:
        cursor = self.dossiers.find(
            {"status": PENDING, "next_attempt_at": {"$lte": now}}, {"_id": 1}
        ).limit(limit)
        return [document["_id"] async for document in cursor]

    # ------------------------------------------------------------------ operators

    async def sync_state(self, code: str) -> Document | None:
        """The sync fields and `seq` of one dossier (not its facts)."""
        return await self.dossiers.find_one(
            {"_id": code}, {field: 1 for field in (*SYNC_FIELDS, "seq")}
        )

    async def codes_with_status(self, status: str) -> list[str]:
        return [d["_id"] async for d in self.dossiers.find({"status": status}, {"_id": 1})]

    async def reset_for_resync(
        self, code: str, now: datetime, lease: timedelta, claim: str
    ) -> Document | str:
        """Forget what the portal acknowledged, so that everything is sent again, and claim the
        dossier for the caller in the same write (a worker of the service running beside an
        operator's command could otherwise take it in between). Returns the document as reset
        and claimed, or `unknown`, or `busy` (a worker holds the dossier right now)."""
        document = await self.dossiers.find_one_and_update(
            {"_id": code, **_lease_free(now)},
            {
                "$set": {
                    "status": PENDING,
                    "synced_seq": 0,
                    "steps_sent": [],
                    "last_error": None,
                    "updated_at": now,
                    **_claimed(now, lease, claim),
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if document is not None:
            return document
        return "busy" if await self.dossiers.find_one({"_id": code}, {"_id": 1}) else "unknown"

    async def counts(self) -> dict[str, int]:
        """Dossiers per sync status (every status present, zeros included): one count per
        status, each on the indexed `status` (a `$group` over the collection would read it all)."""
        return {
            status: await self.dossiers.count_documents({"status": status}) for status in STATUSES
        }

    # ------------------------------------------------------------------ start-up

    async def migrate_sync_collection(self, now: datetime) -> int:
        """Merge the former `portal_sync` collection into the dossiers' documents (read in batches
        of `MIGRATION_BATCH`, written in `bulk_write_in_chunks`' small chunks), then drop it;
        returns how many former states it found. Idempotent; once done, one command at start.

        Handlers may run meanwhile (the lifecycle starts after the broker): a dossier an event has
        made pending under the new layout already has a `status` and keeps its own state (at
        worst everything is sent again; the portal upserts). Dossiers whose old `pending` mark was
        never written (the old handler died between its two writes) are made pending."""
        if not await self.db.list_collection_names(filter={"name": LEGACY_SYNC_COLLECTION}):
            return 0
        legacy = self.db[LEGACY_SYNC_COLLECTION]
        merged = 0
        batch: list[UpdateOne] = []
        async for state in legacy.find({}).batch_size(MIGRATION_BATCH):
            fields = {k: state[k] for k in SYNC_FIELDS if k in state}
            batch.append(
                UpdateOne({"_id": state["_id"], "status": {"$exists": False}}, {"$set": fields})
            )
            if len(batch) == MIGRATION_BATCH:
                await bulk_write_in_chunks(self.dossiers, batch)
                merged, batch = merged + len(batch), []
        if batch:
            await bulk_write_in_chunks(self.dossiers, batch)
            merged += len(batch)
        await self.dossiers.update_many(
            {"status": {"$exists": False}},
            {
                "$set": {
                    "status": PENDING,
                    "next_attempt_at": now,
                    "attempts": 0,
                    "synced_seq": 0,
                    "steps_sent": [],
                    "lease_until": None,
                    "claim": None,
                    "created_at": now,
                    "updated_at": now,
                }
            },
        )
        await legacy.drop()
        return merged

"""The erasure command's queries on intake's dossiers (see `services.intake.erasure`).

Finished dossiers carry `erasable: true` and `finished_at` until their personal data is erased
(`store.apply_processing_step` sets them); the index (`erasable`, `finished_at`) serves the
search, and erasing removes `erasable`, so a second run finds nothing: the command is
idempotent and each run reads only what is left to erase.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.intake.adapters.store import (
    ERASABLE,
    FINISHED_AT,
    IDEMPOTENCY_ANSWER,
    IntakeStore,
)
from services.intake.domain.erasure import FINISHED_STATES, anonymised_fields, stored_files

Document = dict[str, Any]
# What the anonymisation reads of a dossier.
_PROJECTION = {"applicant.kind": 1, "documents": 1, "rating": 1, FINISHED_AT: 1}


class DossierErasureStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.store = IntakeStore(db)
        self.dossiers = self.store.dossiers

    async def erasable_before(self, cutoff: datetime, limit: int) -> list[Document]:
        """Finished dossiers not erased yet whose finish date is before `cutoff`, oldest first."""
        cursor = (
            self.dossiers.find({ERASABLE: True, FINISHED_AT: {"$lt": cutoff}}, _PROJECTION)
            .sort(FINISHED_AT, ASCENDING)
            .limit(limit)
        )
        return [d async for d in cursor]

    async def erase(self, dossier: Document, now: datetime) -> bool:
        """Delete the dossier's files and replace its personal fields, once: False when another
        run erased it first."""
        await self.store.delete_attachments(stored_files(dossier))
        result = await self.dossiers.update_one(
            {"_id": dossier["_id"], ERASABLE: True},
            # The sealed answer to the submission's retries goes too (its receipt names files).
            {
                "$set": anonymised_fields(dossier, now),
                "$unset": {ERASABLE: "", IDEMPOTENCY_ANSWER: ""},
            },
        )
        return result.modified_count == 1

    async def mark_finished(self) -> AsyncIterator[str]:
        """One-off, after upgrading: give dossiers finished before `erasable` existed their
        marker, the finish date being their last status change. Reads every dossier."""
        cursor = self.dossiers.find(
            {
                "status.state": {"$in": sorted(int(s) for s in FINISHED_STATES)},
                FINISHED_AT: {"$exists": False},
            },
            {"status.updated_at": 1},
        )
        async for dossier in cursor:
            finished_at = dossier["status"]["updated_at"]
            await self.dossiers.update_one(
                {"_id": dossier["_id"], FINISHED_AT: {"$exists": False}},
                {"$set": {FINISHED_AT: finished_at, ERASABLE: True}},
            )
            yield dossier["_id"]

"""The erasure command's queries on the citizen messages' collections (see
`services.notification.citizens.erasure`).

A finished dossier's recipient carries `erasable: true` and `finished_at` until erased (set by
`CitizenMessages.dossier_processed`); the index (`erasable`, `finished_at`) serves the search,
the dossier's messages are found by `dossier_code` (indexed), and erasing removes `erasable`:
a second run finds nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.notification.citizens.domain.erasure import (
    ERASABLE,
    ERASED_DELIVERY,
    ERASED_INBOX_MESSAGE,
    FINISHED_AT,
    erased_recipient,
)

Document = dict[str, Any]


class ContactErasureStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.recipients = db["recipients"]
        self.deliveries = db["deliveries"]
        self.inbox = db["inbox"]

    async def erasable_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Codes of finished dossiers not erased yet, finished before `cutoff`, oldest first."""
        cursor = (
            self.recipients.find({ERASABLE: True, FINISHED_AT: {"$lt": cutoff}}, {"_id": 1})
            .sort(FINISHED_AT, ASCENDING)
            .limit(limit)
        )
        return [d["_id"] async for d in cursor]

    async def erase(self, dossier_code: str, now: datetime) -> bool:
        """Blank the dossier's messages, then its recipient (last: a crash in between leaves
        it to the next run); False when another run erased it first."""
        await self.deliveries.update_many({"dossier_code": dossier_code}, {"$set": ERASED_DELIVERY})
        await self.inbox.update_many({"dossier_code": dossier_code}, {"$set": ERASED_INBOX_MESSAGE})
        result = await self.recipients.update_one(
            {"_id": dossier_code, ERASABLE: True},
            {"$set": erased_recipient(now), "$unset": {ERASABLE: ""}},
        )
        return result.modified_count == 1

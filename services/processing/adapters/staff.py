"""The staff directory: each staff member who has called processing's officer API (subject, name,
username, unit, roles, when last seen), as their verified access token said. It serves the unit
head's assignment form (`GET /api/v1/staff`: the unit's officers), in processing's own database,
beside the cases it assigns.

It is a convenience, not an authority: the roles and unit are those of the member's latest
recorded token, and each action is still checked against the token it comes with.

One collection, `staff` (`_id` = the provider's subject). A record writes one document by `_id`;
the list reads a unit's members with one `unit` equality (the index below).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.runtime.mongo import ensure_indexes

Document = dict[str, Any]

STAFF = "staff"
# The staff collection's indexes (`shared.runtime.mongo.ensure_indexes`), declared beside the
# case store's `INDEXES` in processing's database; queries lead with `_id` or `unit`.
INDEXES: dict[str, list[IndexModel]] = {
    STAFF: [IndexModel([("unit", ASCENDING)])],
}
# The members of one unit read at most (a unit has tens of staff).
MAX_UNIT_MEMBERS = 1000


@dataclass(frozen=True)
class StaffMember:
    subject: str
    name: str | None
    username: str | None
    unit: str | None
    roles: frozenset[str]
    last_seen: datetime

    @classmethod
    def of(cls, document: Document) -> StaffMember:
        return cls(
            subject=str(document["_id"]),
            name=document.get("name") or None,
            username=document.get("username") or None,
            unit=document.get("unit"),
            roles=frozenset(str(role) for role in document.get("roles") or ()),
            last_seen=document["last_seen"],
        )


class StaffStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.staff: AsyncCollection[Document] = db[STAFF]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    async def record(
        self,
        *,
        subject: str,
        name: str | None,
        username: str | None,
        unit: str | None,
        roles: Iterable[str],
        at: datetime,
    ) -> None:
        """Who called, as their token said (the latest record wins)."""
        await self.staff.update_one(
            {"_id": subject},
            {
                "$set": {
                    "name": name,
                    "username": username,
                    "unit": unit,
                    "roles": sorted({str(role) for role in roles}),
                    "last_seen": at,
                }
            },
            upsert=True,
        )

    async def name_of(self, subject: str) -> str | None:
        """The recorded name of `subject` (None: not recorded, or no name)."""
        found = await self.staff.find_one({"_id": subject}, {"name": 1, "username": 1})
        if found is None:
            return None
        return found.get("name") or found.get("username") or None

    async def members_of(self, unit: str) -> list[StaffMember]:
        """The unit's recorded members (every role), by name, then subject."""
        cursor = self.staff.find({"unit": unit}).limit(MAX_UNIT_MEMBERS)
        members = [StaffMember.of(document) async for document in cursor]
        return sorted(
            members, key=lambda m: ((m.name or m.username or m.subject).casefold(), m.subject)
        )

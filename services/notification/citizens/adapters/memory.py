"""The citizen messages' store in memory (`MessageStore`), for tests of the service layer without a
database. It understands the small part of MongoDB's filters and updates that the notifier sends
(see `MessageStore`); the contract test (`tests/integration/notification/test_store_contract.py`)
holds it to the MongoDB store's behaviour."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from services.notification.citizens.domain.delivery import CREATED, SENDING
from services.notification.citizens.domain.ports import Document


class InMemoryMessageStore:
    def __init__(self) -> None:
        self.recipients: dict[str, Document] = {}
        self.deliveries: dict[str, Document] = {}
        self.inbox: dict[str, Document] = {}  # what the inbox channel stored, by `_id`

    async def ensure_indexes(self) -> None:
        return None

    # ------------------------------------------------------------------ recipients

    async def save_recipient(
        self, dossier_code: str, fields: Document, *, new: bool = False
    ) -> None:
        stored = self.recipients.setdefault(dossier_code, {"_id": dossier_code})
        stored.update(copy.deepcopy(fields))

    async def recipient(self, dossier_code: str) -> Document | None:
        return _copy(self.recipients.get(dossier_code))

    # ------------------------------------------------------------------ deliveries

    async def create_delivery(self, document: Document) -> bool:
        if document["_id"] in self.deliveries:
            return False  # the `_id` derives from the source event and channel
        self.deliveries[document["_id"]] = copy.deepcopy(document)
        return True

    async def delivery(self, notification_id: str) -> Document | None:
        return _copy(self.deliveries.get(notification_id))

    async def claim(
        self, notification_id: str, now: datetime, lease: timedelta, claim: str
    ) -> Document | None:
        document = self.deliveries.get(notification_id)
        due = {
            "$or": [
                {"status": CREATED, "next_attempt_at": {"$lte": now}},
                {"status": SENDING, "lease_until": {"$lte": now}},
            ]
        }
        if document is None or not matches(document, due):
            return None
        apply_update(
            document,
            {
                "$set": {
                    "status": SENDING,
                    "claim": claim,
                    "lease_until": now + lease,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
        )
        return _copy(document)

    async def due_ids(self, now: datetime, limit: int) -> list[str]:
        ids: list[str] = []
        for status, moment in ((CREATED, "next_attempt_at"), (SENDING, "lease_until")):
            found = self._where({"status": status, moment: {"$lte": now}})
            ids.extend(d["_id"] for d in found[: max(limit - len(ids), 0)])
        return ids

    async def update_where(self, document_filter: Document, update: Document) -> bool:
        return await self.update_and_read(document_filter, update) is not None

    async def update_and_read(self, document_filter: Document, update: Document) -> Document | None:
        found = self._where(document_filter)
        if not found:
            return None
        apply_update(found[0], update)
        return _copy(found[0])

    async def pending_fallbacks(self, before: datetime, limit: int = 100) -> list[Document]:
        found = self._where({"fallback_pending": True, "updated_at": {"$lte": before}})
        return [copy.deepcopy(d) for d in found[:limit]]

    async def deliveries_for(self, dossier_code: str) -> list[Document]:
        found = self._where({"dossier_code": dossier_code})
        return [copy.deepcopy(d) for d in sorted(found, key=_created_at)]

    async def inbox_for(self, dossier_code: str) -> list[Document]:
        found = [m for m in self.inbox.values() if m.get("dossier_code") == dossier_code]
        return [copy.deepcopy(m) for m in sorted(found, key=_created_at)]

    def _all(self) -> list[Document]:
        return list(self.deliveries.values())

    def _where(self, document_filter: Document) -> list[Document]:
        return [d for d in self._all() if matches(d, document_filter)]


def _copy(document: Document | None) -> Document | None:
    return copy.deepcopy(document) if document is not None else None


def _created_at(document: Document) -> Any:
    return document.get("created_at")


# ------------------------------------------------------------------------ a MongoDB subset

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$lte": lambda value, bound: value is not None and value <= bound,
    "$lt": lambda value, bound: value is not None and value < bound,
    "$gte": lambda value, bound: value is not None and value >= bound,
    "$gt": lambda value, bound: value is not None and value > bound,
    "$in": lambda value, options: value in options,
    "$ne": lambda value, other: value != other,
}


def matches(document: Document, document_filter: Document) -> bool:
    """Does `document` match the filter (equality, the comparisons above, `$or`, `$and`)?"""
    for key, condition in document_filter.items():
        if key == "$or":
            if not any(matches(document, branch) for branch in condition):
                return False
        elif key == "$and":
            if not all(matches(document, branch) for branch in condition):
                return False
        elif isinstance(condition, dict) and condition and next(iter(condition)).startswith("$"):
            value = document.get(key)
            for operator, operand in condition.items():
                if operator not in _COMPARISONS:
                    raise NotImplementedError(f"filter operator {operator}")
                if not _COMPARISONS[operator](value, operand):
                    return False
        elif document.get(key) != condition:  # None also matches a missing field
            return False
    return True


def apply_update(document: Document, update: Document) -> None:
    """Apply `$set`, `$unset`, `$inc` and `$push` (a value, or `$each`) to `document`."""
    for operator, fields in update.items():
        for name, value in fields.items():
            if operator == "$set":
                document[name] = copy.deepcopy(value)
            elif operator == "$unset":
                document.pop(name, None)
            elif operator == "$inc":
                document[name] = document.get(name, 0) + value
            elif operator == "$push":
                items = value["$each"] if isinstance(value, dict) and "$each" in value else [value]
                document.setdefault(name, []).extend(copy.deepcopy(items))
            else:
                raise NotImplementedError(f"update operator {operator}")

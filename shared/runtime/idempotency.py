"""The idempotent consumer: an event's effect and the record that it was applied, in one write.

Single-document atomicity is all we rely on (it holds on MongoDB and FerretDB alike): the update
is applied only to a document that does not yet list the event id, and the same update pushes the
id. A redelivered event matches no document and changes nothing.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.runtime.mongo import as_stored, upserted_document

APPLIED_EVENTS_FIELD = "applied_event_ids"

Document = dict[str, Any]


def _once(
    document_filter: dict[str, Any], event_id: str, update: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update that apply `update` only where `event_id` is not listed yet, and
    list it."""
    update = {**update, "$push": {**update.get("$push", {}), APPLIED_EVENTS_FIELD: event_id}}
    return {**document_filter, APPLIED_EVENTS_FIELD: {"$ne": event_id}}, update


async def apply_once(
    collection: AsyncCollection[Any],
    document_filter: dict[str, Any],
    event_id: str,
    update: dict[str, Any],
    *,
    upsert: bool = True,
) -> bool:
    """Apply `update` to the document matched by `document_filter` unless it already holds
    `event_id`. Returns True when applied now, False when it had been applied before (or, with
    `upsert=False`, when no such document exists).

    `document_filter` must identify one document by a unique key (usually `_id`), so that an
    upsert racing an existing document fails on the key instead of creating a twin.
    """
    query, once = _once(document_filter, event_id, update)
    try:
        result = await collection.update_one(query, once, upsert=upsert)
    except DuplicateKeyError:
        return False  # the document exists and already lists the event
    return result.modified_count == 1 or result.upserted_id is not None


async def apply_once_and_read(
    collection: AsyncCollection[Any], document_filter: Document, event_id: str, update: Document
) -> Document | None:
    """`apply_once` (upserting) that also returns the document as this write left it, in the same
    round trip (findAndModify): for a caller that goes on from the document, instead of reading
    it back. None when the event had been applied before."""
    query, once = _once(document_filter, event_id, update)
    try:
        return await collection.find_one_and_update(
            query, once, upsert=True, return_document=ReturnDocument.AFTER
        )
    except DuplicateKeyError:
        return None  # the document exists and already lists the event


def first_applied(document_id: Any, event_id: str, update: Document) -> Document:
    """The document `apply_once` (upserting) writes where none has `document_id` yet, as the
    database stores it: for a writer that inserts it instead (an insert can share a bulk write;
    its `DuplicateKeyError` then says the document exists, and `apply_once` takes over)."""
    _, once = _once({"_id": document_id}, event_id, update)
    return as_stored(upserted_document(document_id, once))

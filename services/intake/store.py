"""Intake's repository over MongoDB: catalogue, dossiers (with their outbox), attachments,
daily code sequences, idempotency keys and payments.

Only single-document atomic writes are used (MongoDB and FerretDB alike): a dossier and the events
announcing it are one document; a status update and the id of the event that caused it, too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake.domain.catalogue import Unit, search_text
from shared.catalogue import Procedure
from shared.cloudevents import CloudEvent
from shared.idempotency import apply_once
from shared.mongo import bulk_write_in_chunks
from shared.outbox import ensure_outbox_index, merge_updates, outbox_update

Document = dict[str, Any]


@dataclass(frozen=True)
class IdempotentResult:
    status_code: int
    body: Any


class IdempotencyConflict(Exception):
    """The key was used for a different request, or the first request is still running."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IntakeStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.units = db["units"]
        self.procedures = db["procedures"]
        self.catalogue_publications = db["catalogue_publications"]
        self.dossiers = db["dossiers"]
        self.sequences = db["sequences"]
        self.idempotency = db["idempotency_keys"]
        self.payments = db["payments"]
        self.attachments = AsyncGridFSBucket(db, bucket_name="attachments")

    async def ensure_indexes(self) -> None:
        await ensure_outbox_index(self.dossiers)
        await self.procedures.create_index([("unit_code", ASCENDING), ("_id", ASCENDING)])
        await self.procedures.create_index([("level", ASCENDING)])
        await self.payments.create_index([("dossier_code", ASCENDING)])

    # ------------------------------------------------------------------ catalogue

    async def save_units(self, units: Iterable[Unit]) -> None:
        for unit in units:
            await self.units.replace_one(
                {"_id": unit.code}, {"_id": unit.code, **unit.model_dump()}, upsert=True
            )

    async def list_units(self) -> list[Document]:
        return [u async for u in self.units.find({}).sort("_id", ASCENDING)]

    async def save_procedures(self, procedures: Sequence[Procedure]) -> int:
        """Store procedures whose content changed (or is new); returns how many. Unchanged ones
        are left alone, so seeding the catalogue at every start-up is idempotent."""
        stored = {
            d["_id"]: d.get("content_sha256")
            async for d in self.procedures.find({}, {"content_sha256": 1})
        }
        changed = [{"_id": p.code, **_procedure_fields(p)} for p in procedures]
        changed = [d for d in changed if stored.get(d["_id"]) != d["content_sha256"]]
        new = [d for d in changed if d["_id"] not in stored]
        if new:
            await self.procedures.insert_many(new, ordered=False)
        for document in changed:
            if document["_id"] in stored:
                await self.procedures.replace_one({"_id": document["_id"]}, document)
        return len(changed)

    async def unpublished_procedures(self) -> list[tuple[Procedure, str]]:
        """Procedures whose current content has not been published on the catalogue topic."""
        published = {
            d["_id"]: d["content_sha256"] async for d in self.catalogue_publications.find({})
        }
        stored = {
            d["_id"]: d["content_sha256"]
            async for d in self.procedures.find({}, {"content_sha256": 1})
        }
        codes = [code for code, sha in stored.items() if published.get(code) != sha]
        if not codes:
            return []
        return [
            (Procedure.model_validate(d), d["content_sha256"])
            async for d in self.procedures.find({"_id": {"$in": codes}})
        ]

    async def mark_published(self, versions: Sequence[tuple[str, str]]) -> None:
        """Record (code, content sha) pairs as published (small documents, bulk writes)."""
        if versions:
            await bulk_write_in_chunks(
                self.catalogue_publications,
                [
                    UpdateOne({"_id": code}, {"$set": {"content_sha256": sha}}, upsert=True)
                    for code, sha in versions
                ],
            )

    async def get_procedure(self, code: str) -> Procedure | None:
        document = await self.procedures.find_one({"_id": code})
        return Procedure.model_validate(document) if document else None

    async def all_procedures(self) -> list[Procedure]:
        return [Procedure.model_validate(d) async for d in self.procedures.find({})]

    async def search_procedures(
        self,
        *,
        terms: Sequence[str],
        unit_code: str | None,
        level: int | None,
        field: str | None,
        after: str | None,
        limit: int,
    ) -> list[Procedure]:
        query: dict[str, Any] = {}
        if terms:
            # Folded text, so "chuyen giao" finds "chuyển giao"; every term must appear.
            query["$and"] = [{"search_text": {"$regex": _escape(term)}} for term in terms]
        if unit_code:
            query["unit_code"] = unit_code
        if level is not None:
            query["level"] = level
        if field:
            query["field"] = field
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.procedures.find(query).sort("_id", ASCENDING).limit(limit)
        return [Procedure.model_validate(d) async for d in cursor]

    # ------------------------------------------------------------------ dossiers

    async def next_sequence(self, key: str) -> int:
        """The next number of a daily counter; atomic, so concurrent submissions never share one."""
        counter = await self.sequences.find_one_and_update(
            {"_id": key}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(counter["value"])

    async def insert_dossier(
        self, dossier: Document, events: Sequence[tuple[str, CloudEvent]]
    ) -> None:
        """The dossier and the events announcing it, in one write. Raises `DuplicateKeyError`
        if the code is taken."""
        pending = outbox_update(events)
        await self.dossiers.insert_one(
            {**dossier, **pending["$set"], "outbox": pending["$push"]["outbox"]["$each"]}
        )

    async def insert_with_next_code(
        self,
        sequence: str,
        build: Callable[[int], tuple[Document, Sequence[tuple[str, CloudEvent]]]],
        attempts: int = 20,
    ) -> Document:
        """Draw the next number of a daily sequence and insert the dossier `build(number)` makes.

        The counter's `$inc` is atomic (on MongoDB, and on devstack's FerretDB, which serialises
        writes), across replicas; the unique dossier code is the last line of defence: a number
        that is taken is never reused, the insert retries with the next one. Every check runs
        before a number is drawn, so a number is consumed by an inserted dossier: no gaps.
        """
        for _ in range(attempts):
            number = await self.next_sequence(sequence)
            dossier, events = build(number)
            try:
                await self.insert_dossier(dossier, events)
                return dossier
            except DuplicateKeyError:
                continue
        raise RuntimeError(f"no free dossier code in {sequence} after {attempts} attempts")

    async def get_dossier(self, code: str) -> Document | None:
        return await self.dossiers.find_one({"_id": code}, {"outbox": 0, "applied_event_ids": 0})

    async def update_dossier(
        self,
        code: str,
        update: Mapping[str, Any],
        events: Sequence[tuple[str, CloudEvent]],
        *,
        expected_state: int | None = None,
    ) -> bool:
        """Apply a citizen action and queue its events in one write; False if the dossier is not
        (or no longer) in `expected_state`."""
        query: dict[str, Any] = {"_id": code}
        if expected_state is not None:
            query["status.state"] = expected_state
        result = await self.dossiers.update_one(
            query, merge_updates(dict(update), outbox_update(events))
        )
        return result.modified_count == 1

    async def apply_event_once(self, code: str, event_id: str, update: Mapping[str, Any]) -> bool:
        """Apply a consumed event's effect to a dossier once (redelivery changes nothing)."""
        return await apply_once(self.dossiers, {"_id": code}, event_id, dict(update), upsert=False)

    async def dossier_exists(self, code: str) -> bool:
        return await self.dossiers.count_documents({"_id": code}, limit=1) == 1

    # ------------------------------------------------------------------ attachments

    async def store_attachment(
        self, data: bytes, *, file_name: str, content_type: str, metadata: Mapping[str, Any]
    ) -> str:
        file_id = await self.attachments.upload_from_stream(
            file_name, data, metadata={"content_type": content_type, **metadata}
        )
        return str(file_id)

    async def delete_attachments(self, storage_ids: Iterable[str]) -> None:
        for storage_id in storage_ids:
            try:
                await self.attachments.delete(ObjectId(storage_id))
            except Exception:  # best effort: an orphan is harmless, a lost dossier is not
                continue

    # ------------------------------------------------------------------ idempotency keys

    async def reserve_idempotency_key(self, key: str, fingerprint: str) -> IdempotentResult | None:
        """Reserve `key` for this request; returns the stored response of a completed first
        request with the same key, or raises `IdempotencyConflict`."""
        try:
            await self.idempotency.insert_one(
                {
                    "_id": key,
                    "fingerprint": fingerprint,
                    "state": "in-progress",
                    "created_at": datetime.now(UTC),
                }
            )
            return None
        except DuplicateKeyError:
            existing = await self.idempotency.find_one({"_id": key})
        if existing is None:  # released meanwhile: let the client retry
            raise IdempotencyConflict("in-progress")
        if existing["fingerprint"] != fingerprint:
            raise IdempotencyConflict("mismatch")
        if existing["state"] != "completed":
            raise IdempotencyConflict("in-progress")
        return IdempotentResult(existing["status_code"], existing["body"])

    async def complete_idempotency_key(self, key: str, status_code: int, body: Any) -> None:
        await self.idempotency.update_one(
            {"_id": key},
            {"$set": {"state": "completed", "status_code": status_code, "body": body}},
        )

    async def release_idempotency_key(self, key: str) -> None:
        """Forget a key whose request failed, so that a corrected retry can use it."""
        await self.idempotency.delete_one({"_id": key, "state": "in-progress"})

    # ------------------------------------------------------------------ payments

    async def create_payment(self, payment: Document) -> None:
        await self.payments.insert_one(payment)

    async def get_payment(self, transaction_id: str) -> Document | None:
        return await self.payments.find_one({"_id": transaction_id})

    async def settle_payment(self, transaction_id: str, fields: Mapping[str, Any]) -> bool:
        """Mark a pending payment settled; False when it was settled already (a replay)."""
        result = await self.payments.update_one(
            {"_id": transaction_id, "status": "pending"}, {"$set": dict(fields)}
        )
        return result.modified_count == 1


def _procedure_fields(procedure: Procedure) -> Document:
    content = procedure.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {
        **content,
        "search_text": search_text(procedure),
        "content_sha256": digest,
        "updated_at": datetime.now(UTC),
    }


def _escape(term: str) -> str:
    return re.escape(term)

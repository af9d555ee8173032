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
from datetime import UTC, date, datetime, timedelta
from typing import Any

import bson
from bson import ObjectId
from bson.errors import InvalidDocument
from cachetools import TTLCache
from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake.domain.catalogue import Unit, search_text
from services.intake.domain.dossier import (
    RATABLE_STATES,
    Dossier,
    InboxMessage,
    ProcessingStep,
    Rating,
)
from services.intake.domain.idempotency import (
    IDEMPOTENCY_TTL,
    SealedResponse,
    expiry_day,
    idempotency_answer_id,
    idempotency_record_id,
    idempotency_record_lapsed,
)
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import DocumentRef, DossierState
from shared.runtime.idempotency import apply_once
from shared.runtime.mongo import bulk_write_in_chunks, ensure_indexes, gridfs_indexes
from shared.runtime.outbox import OUTBOX_INDEX, OutboxRelay, merge_updates, outbox_update
from shared.runtime.write_batching import NumberDrawer, WriteBatcher

Document = dict[str, Any]
# An event to publish: (topic, event), queued in the dossier's outbox.
Outgoing = tuple[str, CloudEvent]

# Set on a payment whose callback was recorded and answered but not yet applied to the dossier.
CALLBACK_PENDING = "callback_pending"
# True on a procedure whose stored content is not yet published on the catalogue topic.
PUBLISH_PENDING = "publish_pending"

# On a dossier submitted with an Idempotency-Key: the answer's id (the lookup of a retry) and
# the answer itself, written with the dossier in one insert.
IDEMPOTENCY_ANSWER_ID = "idempotency_answer_id"
IDEMPOTENCY_ANSWER = "idempotency_answer"

# Set on a finished dossier (state 3, 8 or 10) whose personal data is not erased yet, with the
# finish date: the erasure command's query (`adapters.erasure`).
ERASABLE = "erasable"
FINISHED_AT = "finished_at"

# The submitted files (GridFS: `attachments.files` and `attachments.chunks`).
ATTACHMENTS_BUCKET = "attachments"
# GridFS's default chunk size (255 KiB), as `AsyncGridFSBucket` would write it.
CHUNK_SIZE = 255 * 1024

# Every index of intake's collections (`shared.runtime.mongo.ensure_indexes`); repeated queries
# start with an equality on `_id` or on the first key of one of these.
INDEXES: dict[str, list[IndexModel]] = {
    "dossiers": [
        OUTBOX_INDEX,
        IndexModel([(ERASABLE, ASCENDING), (FINISHED_AT, ASCENDING)]),
        # A retry with the Idempotency-Key of a stored dossier finds its answer.
        IndexModel([(IDEMPOTENCY_ANSWER_ID, ASCENDING)]),
    ],
    "procedures": [
        # The search's filters (then by code); the publisher's pass.
        IndexModel([("unit_code", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("level", ASCENDING)]),
        IndexModel([("field", ASCENDING)]),
        IndexModel([(PUBLISH_PENDING, ASCENDING)]),
    ],
    "payments": [
        IndexModel([("dossier_code", ASCENDING)]),
        # Present only while a recorded callback awaits completion: the recovery pass's query.
        IndexModel([(CALLBACK_PENDING, ASCENDING)]),
    ],
    # The daily clean-up deletes the records that expired on each past day.
    "idempotency_keys": [IndexModel([("expires_on", ASCENDING)])],
    **gridfs_indexes(ATTACHMENTS_BUCKET),
}


@dataclass(frozen=True)
class IdempotentResult:
    status_code: int
    body: Any


@dataclass(frozen=True)
class IdempotencyClaim:
    """A request's reservation of its Idempotency-Key (`reserve_idempotency_key`)."""

    key: str
    reservation: str

    def answer(self, status_code: int, body: Any, now: datetime | None = None) -> Document:
        """The fields that keep this request's answer in the dossier it stores, sealed."""
        return {
            IDEMPOTENCY_ANSWER_ID: idempotency_answer_id(
                idempotency_record_id(self.key), self.reservation
            ),
            IDEMPOTENCY_ANSWER: {
                "status_code": status_code,
                "sealed_body": SealedResponse.seal(self.key, body),
                "created_at": now or datetime.now(UTC),
            },
        }


class IdempotencyConflict(Exception):
    """The key was used for a different request, or the first request is still running."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unstorable(ValueError):
    """A document the database cannot hold (refused before anything is written)."""


@dataclass(frozen=True)
class NewAttachment:
    """A file to store: its bytes, the name and type to serve it with, and free metadata."""

    data: bytes
    file_name: str
    content_type: str
    metadata: Mapping[str, Any]


# What the dossier's readers never see: its outbox, the ids of the events it applied, and the
# sealed answer to its submission's retries.
_STORED_ONLY = {
    "outbox": 0,
    "applied_event_ids": 0,
    IDEMPOTENCY_ANSWER_ID: 0,
    IDEMPOTENCY_ANSWER: 0,
}


class IntakeStore:
    def __init__(self, db: AsyncDatabase[Document], procedure_cache_seconds: float = 0.0) -> None:
        """`procedure_cache_seconds`: how long `cached_procedure` may answer from memory."""
        self.db = db
        # Procedures as the submissions read them (one read per dossier otherwise). Changes made
        # through this store drop their entry; another replica's reach this one within the TTL.
        self._procedure_cache: TTLCache[str, Procedure] = TTLCache(
            maxsize=10_000, ttl=procedure_cache_seconds
        )
        self.units = db["units"]
        self.procedures = db["procedures"]
        self.catalogue_publications = db["catalogue_publications"]
        self.dossiers = db["dossiers"]
        self._dossier_inserts = WriteBatcher(self.dossiers)
        self.sequences = db["sequences"]
        self._numbers = NumberDrawer(self.sequences)
        self.idempotency = db["idempotency_keys"]
        self._idempotency_writes = WriteBatcher(self.idempotency)
        self.payments = db["payments"]
        self.attachments = AsyncGridFSBucket(db, bucket_name=ATTACHMENTS_BUCKET)
        self.attachments_files = db[f"{ATTACHMENTS_BUCKET}.files"]
        self.attachments_chunks = db[f"{ATTACHMENTS_BUCKET}.chunks"]
        # Simultaneous submissions share their inserts (`WriteBatcher`).
        self._file_inserts = WriteBatcher(self.attachments_files)
        self._chunk_inserts = WriteBatcher(self.attachments_chunks)

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES)

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
        for document in changed:
            document[PUBLISH_PENDING] = True
        new = [d for d in changed if d["_id"] not in stored]
        if new:
            await self.procedures.insert_many(new, ordered=False)
        for document in changed:
            self._procedure_cache.pop(document["_id"], None)
            if document["_id"] in stored:
                await self.procedures.replace_one({"_id": document["_id"]}, document)
        return len(changed)

    async def flag_unpublished(self) -> int:
        """Flag every procedure whose stored content differs from what was last published (also
        what a crash or an older version left unflagged); returns how many were flagged. Reads
        both collections whole: once, at start-up."""
        published = {
            d["_id"]: d["content_sha256"] async for d in self.catalogue_publications.find({})
        }
        codes = [
            d["_id"]
            async for d in self.procedures.find({}, {"content_sha256": 1, PUBLISH_PENDING: 1})
            if published.get(d["_id"]) != d["content_sha256"] and not d.get(PUBLISH_PENDING)
        ]
        await bulk_write_in_chunks(
            self.procedures,
            [UpdateOne({"_id": code}, {"$set": {PUBLISH_PENDING: True}}) for code in codes],
        )
        return len(codes)

    async def unpublished_procedures(self) -> list[tuple[Procedure, str]]:
        """Procedures whose current content has not been published on the catalogue topic (the
        indexed flag `save_procedures` and `flag_unpublished` set)."""
        return [
            (Procedure.model_validate(d), d["content_sha256"])
            async for d in self.procedures.find({PUBLISH_PENDING: True})
        ]

    async def mark_published(self, versions: Sequence[tuple[str, str]]) -> None:
        """Record (code, content sha) pairs as published (small documents, bulk writes), then
        clear the flag of each procedure still at that content (compare-and-set on the sha)."""
        if versions:
            await bulk_write_in_chunks(
                self.catalogue_publications,
                [
                    UpdateOne({"_id": code}, {"$set": {"content_sha256": sha}}, upsert=True)
                    for code, sha in versions
                ],
            )
            await bulk_write_in_chunks(
                self.procedures,
                [
                    UpdateOne(
                        {"_id": code, "content_sha256": sha}, {"$set": {PUBLISH_PENDING: False}}
                    )
                    for code, sha in versions
                ],
            )

    async def get_procedure(self, code: str) -> Procedure | None:
        document = await self.procedures.find_one({"_id": code})
        return Procedure.model_validate(document) if document else None

    async def cached_procedure(self, code: str) -> Procedure | None:
        """`get_procedure`, answered from memory for `procedure_cache_seconds` (unknown codes
        are not remembered)."""
        procedure = self._procedure_cache.get(code)
        if procedure is None:
            procedure = await self.get_procedure(code)
            if procedure is not None and self._procedure_cache.ttl > 0:
                self._procedure_cache[code] = procedure
        return procedure

    async def procedure_version(self, code: str) -> tuple[Procedure, str] | None:
        """The procedure and its version: the stored content's sha-256 (the admin API's
        `ETag`), which changes with every change of the content."""
        document = await self.procedures.find_one({"_id": code})
        if document is None:
            return None
        return Procedure.model_validate(document), str(document["content_sha256"])

    async def replace_procedure(self, procedure: Procedure, expected: str | None) -> str | None:
        """An administrator's change, stored only if the procedure is still at the version
        `expected` (None: only if there is no such procedure yet): compare-and-set on `_id` and
        the content's sha-256 (equalities FerretDB pushes down). Answers the new version, or
        None when another change came first (or the procedure exists already)."""
        document = {"_id": procedure.code, **_procedure_fields(procedure), PUBLISH_PENDING: True}
        version = str(document["content_sha256"])
        self._procedure_cache.pop(procedure.code, None)
        if expected is None:
            try:
                await self.procedures.insert_one(document)
            except DuplicateKeyError:
                return None
            return version
        if version == expected:  # nothing changed: still at that version?
            found = await self.procedures.find_one(
                {"_id": procedure.code, "content_sha256": expected}, {"_id": 1}
            )
            return version if found else None
        replaced = await self.procedures.replace_one(
            {"_id": procedure.code, "content_sha256": expected}, document
        )
        return version if replaced.matched_count == 1 else None

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
        """The next number of a daily counter; atomic, so concurrent submissions never share one
        (simultaneous ones draw theirs in one round trip)."""
        return await self._numbers.draw(key)

    async def insert_dossier(
        self,
        dossier: Dossier,
        events: Sequence[Outgoing],
        handover: OutboxRelay | None = None,
        answer: Document | None = None,
    ) -> None:
        """The dossier and the events announcing it, in one write. Raises `DuplicateKeyError`
        if the code is taken. With `handover`, the document is written claimed by that relay
        and handed to it (published without being read back). `answer`
        (`IdempotencyClaim.answer`) is the submission's answer to replay, kept with it."""
        document = _with_outbox(dossier_document(dossier), events)
        if answer is not None:
            document.update(answer)
        if handover is not None:
            document.update(handover.handover_claim())
        await self._dossier_inserts.insert(document)
        if handover is not None:
            handover.hand_over(document)

    @staticmethod
    def check_storable(dossier: Dossier, events: Sequence[Outgoing]) -> None:
        """Raise `Unstorable` if the dossier with its events cannot be encoded for the database
        (a value BSON cannot hold), without writing anything."""
        try:
            bson.encode(_with_outbox(dossier_document(dossier), events))
        except (InvalidDocument, OverflowError, UnicodeEncodeError) as error:
            raise Unstorable(str(error)) from None

    async def insert_with_next_code(
        self,
        sequence: str,
        build: Callable[[int], tuple[Dossier, Sequence[Outgoing]]],
        attempts: int = 20,
        handover: OutboxRelay | None = None,
        answer: Callable[[Dossier], Document] | None = None,
    ) -> Dossier:
        """Draw the next number of a daily sequence and insert the dossier `build(number)` makes
        (with the fields `answer(dossier)` gives, see `insert_dossier`).

        The counter's `$inc` is atomic (on MongoDB, and on devstack's FerretDB, which serialises
        writes), across replicas; the unique dossier code is the last line of defence: a number
        that is taken is never reused, the insert retries with the next one. Every check runs
        before a number is drawn, so a number is consumed by an inserted dossier: no gaps.
        """
        for _ in range(attempts):
            number = await self.next_sequence(sequence)
            dossier, events = build(number)
            try:
                await self.insert_dossier(
                    dossier, events, handover, answer(dossier) if answer else None
                )
                return dossier
            except DuplicateKeyError:
                continue
        raise RuntimeError(f"no free dossier code in {sequence} after {attempts} attempts")

    async def get_dossier(self, code: str) -> Dossier | None:
        document = await self.dossier_record(code)
        return Dossier.model_validate(document) if document else None

    async def dossier_record(self, code: str) -> Document | None:
        """The stored dossier as it is (without its outbox, applied event ids and sealed answer)."""
        return await self.dossiers.find_one({"_id": code}, _STORED_ONLY)

    async def request_withdrawal(
        self, code: str, expected_state: int, events: Sequence[Outgoing]
    ) -> bool:
        """Flag the citizen's withdrawal request and queue its events in one write; False if the
        dossier is no longer in `expected_state`."""
        return await self._update_in_state(
            code, expected_state, {"$set": {"status.withdrawal_requested": True}}, events
        )

    async def add_supplement(
        self, code: str, documents: Sequence[DocumentRef], events: Sequence[Outgoing]
    ) -> bool:
        """Add the supplemented documents, close the supplement request and queue its events in
        one write; False if the dossier no longer awaits a supplement."""
        update = {
            "$set": {"status.supplement_sent": True},
            "$push": {"documents": {"$each": [d.model_dump(mode="json") for d in documents]}},
        }
        return await self._update_in_state(code, DossierState.SUPPLEMENT_REQUESTED, update, events)

    async def add_rating(self, code: str, rating: Rating, events: Sequence[Outgoing]) -> bool:
        """Keep the applicant's rating and queue its events in one write; False if the dossier
        is rated already or no longer finished (a concurrent rating wins once)."""
        result = await self.dossiers.update_one(
            {
                "_id": code,
                "status.state": {"$in": sorted(int(s) for s in RATABLE_STATES)},
                "rating": None,  # absent or null
            },
            merge_updates({"$set": {"rating": rating.model_dump()}}, outbox_update(events)),
        )
        return result.modified_count == 1

    async def _update_in_state(
        self, code: str, state: int, update: Document, events: Sequence[Outgoing]
    ) -> bool:
        result = await self.dossiers.update_one(
            {"_id": code, "status.state": state}, merge_updates(update, outbox_update(events))
        )
        return result.modified_count == 1

    async def apply_processing_step(self, code: str, event_id: str, step: ProcessingStep) -> bool:
        """Apply a processing step to the status view and the history, once per event (a
        redelivery changes nothing); False if already applied or no such dossier."""
        update = {
            "$set": {f"status.{name}": value for name, value in step.status.items()},
            "$push": {"history": step.history.model_dump()},
        }
        if step.finishes:  # the retention of its personal data starts (`erasure`)
            update["$set"] |= {FINISHED_AT: step.history.at, ERASABLE: True}
        return await self._apply_once(code, event_id, update)

    async def add_inbox_message(self, code: str, event_id: str, message: InboxMessage) -> bool:
        """Put a message in the dossier's inbox, once per event."""
        return await self._apply_once(code, event_id, {"$push": {"inbox": message.model_dump()}})

    async def mark_paid(self, code: str, transaction_id: str, events: Sequence[Outgoing]) -> bool:
        """Mark the dossier paid and queue its events, once per transaction."""
        update = merge_updates({"$set": {"status.paid": True}}, outbox_update(events))
        return await self._apply_once(code, f"payment:{transaction_id}", update)

    async def _apply_once(self, code: str, event_id: str, update: Document) -> bool:
        return await apply_once(self.dossiers, {"_id": code}, event_id, update, upsert=False)

    async def dossier_exists(self, code: str) -> bool:
        return await self.dossiers.count_documents({"_id": code}, limit=1) == 1

    # ------------------------------------------------------------------ attachments

    async def store_attachments(self, files: Sequence[NewAttachment]) -> list[str]:
        """Store a request's files in the `attachments` GridFS bucket in two writes: every chunk
        in one insert, then every files document in another (a file becomes visible only
        once its chunks are in). `AsyncGridFSBucket` reads and deletes them as usual; its own
        upload costs four commands per file (an index check on each collection, the chunks, the
        files document), which made attachments half of a submission's database commands.
        Simultaneous submissions share those two writes."""
        if not files:
            return []
        now = datetime.now(UTC)
        file_documents: list[Document] = []
        chunks: list[Document] = []
        for file in files:
            file_id = ObjectId()
            chunks += [
                {"files_id": file_id, "n": n, "data": file.data[start : start + CHUNK_SIZE]}
                for n, start in enumerate(range(0, len(file.data), CHUNK_SIZE))
            ]
            file_documents.append(
                {
                    "_id": file_id,
                    "length": len(file.data),
                    "chunkSize": CHUNK_SIZE,
                    "uploadDate": now,
                    "filename": file.file_name,
                    "metadata": {"content_type": file.content_type, **file.metadata},
                }
            )
        if chunks:
            await self._chunk_inserts.insert(*chunks)
        await self._file_inserts.insert(*file_documents)
        return [str(document["_id"]) for document in file_documents]

    async def delete_attachments(self, storage_ids: Iterable[str]) -> None:
        for storage_id in storage_ids:
            try:
                await self.attachments.delete(ObjectId(storage_id))
            except Exception:  # best effort: an orphan is harmless, a lost dossier is not
                continue

    # ------------------------------------------------------------------ idempotency keys

    async def reserve_idempotency_key(
        self, key: str, fingerprint: str, *, reservation: str, now: datetime | None = None
    ) -> IdempotentResult | None:
        """Reserve `key` for this request (`reservation`: a fresh token, which its answer
        names); returns the stored answer to a first request with the same key, or raises
        `IdempotencyConflict`.

        Neither the record nor its answer holds the key or the response in clear: the record's
        `_id` is the key's digest and the response is sealed with a key derived from the
        Idempotency-Key itself, which only the client holds
        (`services.intake.domain.idempotency.SealedResponse`), so the tracking secret a receipt
        carries cannot be read from the database. A record expires after `IDEMPOTENCY_TTL`, an
        unanswered one after `IDEMPOTENCY_STUCK_AFTER` (a crash mid-way): the key can then be
        used again."""
        now = now or datetime.now(UTC)
        record_id = idempotency_record_id(key)
        fresh = {
            "_id": record_id,
            "fingerprint": fingerprint,
            "reservation": reservation,
            "created_at": now,
            "expires_on": expiry_day(now),
        }
        try:
            await self._idempotency_writes.insert(fresh)
            return None
        except DuplicateKeyError:
            existing = await self.idempotency.find_one({"_id": record_id})
        if existing is None:  # released meanwhile: let the client retry
            raise IdempotencyConflict("in-progress")
        answer = await self._idempotency_answer(existing)
        if idempotency_record_lapsed(existing["created_at"], now, answered=answer is not None):
            # Expired, or stuck after a crash: take it over (only one taker wins the replace).
            taken = await self.idempotency.replace_one(
                {"_id": record_id, "created_at": existing["created_at"]}, fresh
            )
            if taken.modified_count == 1:
                return None
            raise IdempotencyConflict("in-progress")
        if existing["fingerprint"] != fingerprint:
            raise IdempotencyConflict("mismatch")
        if answer is None:
            raise IdempotencyConflict("in-progress")
        body = SealedResponse.open(key, answer["sealed_body"])
        return IdempotentResult(answer["status_code"], body)

    async def _idempotency_answer(self, record: Document) -> Document | None:
        """The answer to the record's current reservation: kept in the dossier it stored
        (`IdempotencyClaim.answer`), or, written by earlier releases, in the record itself or
        in a document of its own beside it (those expire within `IDEMPOTENCY_TTL`)."""
        if record.get("state") == "completed":
            return record
        if not record.get("reservation"):
            return None
        answer_id = idempotency_answer_id(record["_id"], record["reservation"])
        dossier = await self.dossiers.find_one(
            {IDEMPOTENCY_ANSWER_ID: answer_id}, {IDEMPOTENCY_ANSWER: 1}
        )
        if dossier is not None:
            answer: Document = dossier[IDEMPOTENCY_ANSWER]
            return answer
        return await self.idempotency.find_one({"_id": answer_id})

    async def release_idempotency_key(self, key: str, reservation: str) -> None:
        """Forget a key whose request failed, so that a corrected retry can use it."""
        await self.idempotency.delete_one(
            {"_id": idempotency_record_id(key), "reservation": reservation}
        )

    async def delete_expired_idempotency_records(self, today: date) -> int:
        """Delete the records that expired on the days before `today` (one equality delete per
        day, over the days a record can have: index-served, never a scan)."""
        deleted = 0
        for days_ago in range(1, IDEMPOTENCY_TTL.days + 8):
            day = (today - timedelta(days=days_ago)).isoformat()
            result = await self.idempotency.delete_many({"expires_on": day})
            deleted += result.deleted_count
        return deleted

    # ------------------------------------------------------------------ payments

    async def create_payment(self, payment: Document) -> bool:
        """Insert a new payment; False when one with its id exists already (a concurrent start
        of the same attempt: transaction ids are `<payment request key>-<attempt>`)."""
        try:
            await self.payments.insert_one(payment)
        except DuplicateKeyError:
            return False
        return True

    async def get_payment(self, transaction_id: str) -> Document | None:
        return await self.payments.find_one({"_id": transaction_id})

    async def latest_payment(self, dossier_code: str, request_key: str) -> Document | None:
        """The last transaction started for one payment request of a dossier (the highest
        `attempt`), or None."""
        return await self.payments.find_one(
            {"dossier_code": dossier_code, "request": request_key},
            sort=[("attempt", DESCENDING)],
        )

    async def set_payment_url(self, transaction_id: str, payment_url: str) -> None:
        """Keep where the citizen pays, so that asking again answers the same transaction."""
        await self.payments.update_one(
            {"_id": transaction_id}, {"$set": {"payment_url": payment_url}}
        )

    async def abandon_payment(self, transaction_id: str, status: str) -> bool:
        """Close a `pending` payment that never reached the provider (`status` says why), so
        that a new attempt may start; False when it is no longer pending."""
        result = await self.payments.update_one(
            {"_id": transaction_id, "status": "pending", "payment_url": None},
            {"$set": {"status": status}},
        )
        return result.modified_count == 1

    async def record_callback(
        self,
        transaction_id: str,
        conditions: Mapping[str, Any],
        fields: Mapping[str, Any],
        *,
        pending: bool,
    ) -> bool:
        """Record a provider's callback on a `pending` payment matching `conditions`, in one
        conditional write: `fields` take the payment out of `pending`, so a repeated callback
        matches nothing; `pending` flags work left to do after the answer (`callback_pending`,
        indexed, so that the recovery pass finds it). False when nothing matched."""
        update: dict[str, Any] = {
            "$set": {**fields, **({CALLBACK_PENDING: True} if pending else {})}
        }
        result = await self.payments.update_one(
            {**conditions, "_id": transaction_id, "status": "pending"}, update
        )
        return result.modified_count == 1

    async def record_amount_mismatch(
        self, transaction_id: str, callback: Mapping[str, Any], keep: int = 20
    ) -> None:
        """Keep a refused callback of the wrong amount on a pending payment (the last `keep`);
        the payment stays pending."""
        await self.payments.update_one(
            {"_id": transaction_id, "status": "pending"},
            {"$push": {"amount_mismatches": {"$each": [dict(callback)], "$slice": -keep}}},
        )

    async def pending_callback(self, transaction_id: str) -> Document | None:
        """The payment if its callback is recorded but not yet fully applied."""
        return await self.payments.find_one({"_id": transaction_id, CALLBACK_PENDING: True})

    async def pending_callbacks(self, limit: int) -> list[Document]:
        """Payments whose recorded callback is not yet fully applied (left by a crash)."""
        return [p async for p in self.payments.find({CALLBACK_PENDING: True}).limit(limit)]

    async def finish_callback(self, transaction_id: str, fields: Mapping[str, Any]) -> bool:
        """Close a recorded callback; False when it was closed already (by another pass)."""
        result = await self.payments.update_one(
            {"_id": transaction_id, CALLBACK_PENDING: True},
            {"$set": dict(fields), "$unset": {CALLBACK_PENDING: ""}},
        )
        return result.modified_count == 1


def dossier_document(dossier: Dossier) -> Document:
    """How a new dossier is stored: its fields, `_id` the code; the status and the first history
    step carry only what is set."""
    return {
        "_id": dossier.code,
        "procedure_code": dossier.procedure_code,
        "procedure_name": dossier.procedure_name,
        "unit_code": dossier.unit_code,
        "unit_name": dossier.unit_name,
        "level": dossier.level,
        "channel": dossier.channel,
        "applicant": dossier.applicant,
        "contact": dossier.contact,
        "form": dossier.form,
        "documents": [d.model_dump(mode="json") for d in dossier.documents],
        "fee_vnd": dossier.fee_vnd,
        "submitted_at": dossier.submitted_at,
        "tracking_secret_sha256": dossier.tracking_secret_sha256,
        "status": dossier.status.model_dump(exclude_defaults=True),
        "history": [step.model_dump(exclude_none=True) for step in dossier.history],
        "inbox": [message.model_dump() for message in dossier.inbox],
    }


def _with_outbox(dossier: Document, events: Sequence[Outgoing]) -> Document:
    pending = outbox_update(events)
    return {**dossier, **pending["$set"], "outbox": pending["$push"]["outbox"]["$each"]}


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

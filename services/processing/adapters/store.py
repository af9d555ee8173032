"""Processing's MongoDB repository: cases (with their outbox), the catalogue copy, calendar changes
and leases (the result documents' bytes are in `results.py`). Single-document atomicity only
(FerretDB and MongoDB alike).

Every case write is a compare-and-set on the case's `version`, and carries, in the same update, the
history entries, the pending events (`shared.runtime.outbox`) and the id of the input event or the
`Idempotency-Key` that caused it. So two officers acting at once cannot both apply conflicting
transitions, a redelivered event or a retried request changes nothing, and nothing is announced
that was not stored.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.processing.domain.calendar import CalendarChange
from services.processing.domain.case import Case, CaseSummary, StoredCase
from services.processing.domain.errors import InvalidCursor, VersionConflict
from services.processing.domain.lifecycle import CLOCK_RUNNING
from services.processing.domain.workflow import Outcome, Step
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import DossierProcessed
from shared.runtime.idempotency import APPLIED_EVENTS_FIELD
from shared.runtime.mongo import ensure_indexes, gridfs_indexes
from shared.runtime.outbox import OUTBOX_INDEX, merge_updates, outbox_update
from shared.runtime.write_batching import WriteBatcher

REQUEST_KEYS_FIELD = "applied_request_keys"
CASES = "cases"
PROCEDURES = "procedures"
CALENDAR_CHANGES = "calendar_changes"
LEASES = "leases"
RESULTS_BUCKET = "results"
# True while the case has a `next_check_at`: the scanner's equality, so that its range on
# `next_check_at` runs over watched cases only (and FerretDB can push the query down).
WATCHED = "watched"

# Every index of processing's collections (`shared.runtime.mongo.ensure_indexes`); repeated queries
# start with an equality on `_id` or on the first key of one of these.
_WORKLIST_ORDER = [("online_rank", ASCENDING), ("due_sort", ASCENDING), ("_id", ASCENDING)]
INDEXES: dict[str, list[IndexModel]] = {
    CASES: [
        OUTBOX_INDEX,
        # The deadline scanner: watched cases by the instant something is due.
        IndexModel([(WATCHED, ASCENDING), ("next_check_at", ASCENDING)]),
        # The worklist: one unit's active cases, online first, then by due date (keyset on _id).
        IndexModel([("unit_code", ASCENDING), ("active", ASCENDING), *_WORKLIST_ORDER]),
        # The same across units (admins), and the gauges' active cases.
        IndexModel([("active", ASCENDING), *_WORKLIST_ORDER]),
        # The worklist filtered by channel (online, counter, post) in the same order.
        IndexModel(
            [
                ("unit_code", ASCENDING),
                ("active", ASCENDING),
                ("channel", ASCENDING),
                *_WORKLIST_ORDER,
            ]
        ),
        # The worklist's counts per state of one unit (MongoDB counts from the index alone).
        IndexModel([("unit_code", ASCENDING), ("active", ASCENDING), ("state", ASCENDING)]),
    ],
    **gridfs_indexes(RESULTS_BUCKET),
}

# `online_rank` of a case: 0 submitted online (listed first, Decision 4094), 1 otherwise.
ONLINE_RANKS = (0, 1)

# What the worklist reads per case (the history stays in the detail view; the code is `_id`).
SUMMARY_FIELDS = tuple(name for name in CaseSummary.model_fields if name != "code")


def case_from_document(document: dict[str, Any]) -> Case:
    return Case.model_validate({**document, "code": document["_id"]})


def summary_from_document(document: dict[str, Any]) -> CaseSummary:
    return CaseSummary.model_validate({**document, "code": document["_id"]})


def processed_event(case: Case, step: Step) -> DossierProcessed:
    return DossierProcessed(
        dossier_code=case.code,
        occurred_at=step.at,
        procedure_code=case.procedure_code,
        unit_code=case.unit_code,
        action=step.action,
        state=step.to_state,
        previous_state=step.from_state,
        due_at=case.due_at,
        actor=step.actor,
        note=step.note,
        citizen_action=step.citizen_action,
        requested_documents=list(step.requested_documents),
        result_document=step.result_document,
        amount_vnd=step.amount_vnd,
    )


class CaseStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, processed_topic: str, source: str):
        self.db = db
        self.cases: AsyncCollection[dict[str, Any]] = db[CASES]
        self.procedures: AsyncCollection[dict[str, Any]] = db[PROCEDURES]
        self.calendar_changes: AsyncCollection[dict[str, Any]] = db[CALENDAR_CHANGES]
        self.leases: AsyncCollection[dict[str, Any]] = db[LEASES]
        # New cases opened at the same time (the consumer's dossiers) share one `insert_many`.
        self._new_cases = WriteBatcher(self.cases)
        self.processed_topic = processed_topic
        self.source = source

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES)
        # Cases stored before the `watched` flag existed (a no-op once they have it).
        await self.cases.update_many(
            {WATCHED: {"$exists": False}, "next_check_at": {"$ne": None}},
            {"$set": {WATCHED: True}},
        )

    # -- cases --------------------------------------------------------------------------------

    async def load(self, code: str) -> StoredCase | None:
        document = await self.cases.find_one(
            {"_id": code}, {"outbox": 0, "outbox_pending": 0, "outbox_lease_until": 0}
        )
        if document is None:
            return None
        return StoredCase(
            case=case_from_document(document),
            applied_event_ids=frozenset(document.get(APPLIED_EVENTS_FIELD) or ()),
            request_keys=frozenset(document.get(REQUEST_KEYS_FIELD) or ()),
        )

    def _events(self, outcome: Outcome) -> list[tuple[str, CloudEvent]]:
        return [
            (self.processed_topic, wrap(processed_event(outcome.case, step), self.source))
            for step in outcome.steps
        ]

    async def insert(self, outcome: Outcome, event_id: str) -> bool:
        """Store a new case; False when it exists already (a redelivered submitted event)."""
        case = outcome.case
        document: dict[str, Any] = {
            "_id": case.code,
            **_fields(case),
            "version": 1,
            "history": [entry.model_dump() for entry in case.history],
            APPLIED_EVENTS_FIELD: [event_id],
            REQUEST_KEYS_FIELD: [],
            "outbox": [],
            "outbox_pending": False,
        }
        if outcome.steps:
            update = outbox_update(self._events(outcome))
            document["outbox"] = update["$push"]["outbox"]["$each"]
            document.update(update["$set"])
        try:
            await self._new_cases.insert(document)
        except DuplicateKeyError:
            return False
        return True

    async def save(
        self,
        outcome: Outcome,
        expected_version: int,
        *,
        event_id: str | None = None,
        request_key: str | None = None,
    ) -> None:
        """Write the changed case, its new history entries and its events in one update, if the
        case is still at `expected_version`; else `VersionConflict`."""
        case = outcome.case
        new_entries = case.history[len(case.history) - len(outcome.steps) :]
        pushes: dict[str, Any] = {
            "history": {"$each": [entry.model_dump() for entry in new_entries]}
        }
        if event_id is not None:
            pushes[APPLIED_EVENTS_FIELD] = event_id
        if request_key is not None:
            pushes[REQUEST_KEYS_FIELD] = request_key
        update = merge_updates(
            {"$set": _fields(case), "$inc": {"version": 1}, "$push": pushes},
            outbox_update(self._events(outcome)) if outcome.steps else {},
        )
        result = await self.cases.update_one(
            {"_id": case.code, "version": expected_version}, update
        )
        if result.modified_count != 1:
            raise VersionConflict(case.code)

    async def worklist(
        self,
        *,
        unit_code: str | None,
        states: Sequence[int] = (),
        procedure_code: str | None = None,
        channel: int | None = None,
        code: str | None = None,
        overdue_at: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[CaseSummary], str | None]:
        """Active cases, online first then by due date; returns (page, next cursor). `code`
        looks one case up by its code (`_id`), the other filters still apply.

        Raises `InvalidCursor` on a cursor this service did not make."""
        query = _active_query(unit_code, procedure_code, channel)
        if code is not None:
            query["_id"] = code
        if len(states) == 1:  # an equality: FerretDB pushes it down, `$in` it does not
            query["state"] = int(states[0])
        elif states:
            query["state"] = {"$in": list(states)}
        if overdue_at is not None:
            running = [int(s) for s in CLOCK_RUNNING]
            wanted = [s for s in running if not states or s in states]
            query["state"] = {"$in": wanted}
            query["due_sort"] = {"$lt": overdue_at}

        # One query per online rank (online first: 0, then 1), each of equalities and ranges
        # only: FerretDB (with our patch, devstack/ferretdb/patches/) then pushes the filter,
        # the sort and the limit down to PostgreSQL, and MongoDB serves each from the worklist
        # index, sorted by due date. A cursor's rank takes two such queries (the rest of the
        # cursor's due date, then later dates) rather than an `$or`, which FerretDB would
        # filter in Go after reading every case of the rank.
        first_rank, after = 0, None
        if cursor:
            first_rank, due, last_id = decode_cursor(cursor)
            after = {"due_sort": due, "_id": last_id}
        projection = dict.fromkeys(SUMMARY_FIELDS, 1)
        page: list[dict[str, Any]] = []
        for rank in (r for r in ONLINE_RANKS if r >= first_rank):
            ranked = {**query, "online_rank": rank}
            parts = [ranked]
            if after is not None and rank == first_rank:
                same_due = _narrowed(ranked, "due_sort", {"$eq": after["due_sort"]})
                parts = [
                    _narrowed(same_due, "_id", {"$gt": after["_id"]}),
                    _narrowed(ranked, "due_sort", {"$gt": after["due_sort"]}),
                ]
            for part in parts:
                found = (
                    self.cases.find(part, projection)
                    .sort([("due_sort", ASCENDING), ("_id", ASCENDING)])
                    .limit(limit + 1 - len(page))
                )
                page += [document async for document in found]
                if len(page) > limit:
                    break
            if len(page) > limit:
                break
        next_cursor = None
        if len(page) > limit:
            page = page[:limit]
            last = page[-1]
            next_cursor = encode_cursor(last["online_rank"], last["due_sort"], last["_id"])
        return [summary_from_document(document) for document in page], next_cursor

    async def state_counts(
        self,
        *,
        unit_code: str | None,
        procedure_code: str | None = None,
        channel: int | None = None,
    ) -> dict[int, int]:
        """Active cases per state (of one unit, or all), with the worklist's filters."""
        pipeline: list[dict[str, Any]] = [
            {"$match": _active_query(unit_code, procedure_code, channel)},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}},
        ]
        return {
            int(row["_id"]): int(row["n"]) async for row in await self.cases.aggregate(pipeline)
        }

    async def due_for_check(self, now: datetime, limit: int) -> list[str]:
        found = (
            self.cases.find({WATCHED: True, "next_check_at": {"$lte": now}}, {"_id": 1})
            .sort("next_check_at", ASCENDING)
            .limit(limit)
        )
        return [document["_id"] async for document in found]

    async def postpone_check(self, code: str, until: datetime) -> None:
        """Move a case the scanner could not handle out of the way until `until` (it is tried
        again then); the others due keep being scanned."""
        await self.cases.update_one({"_id": code}, {"$set": {"next_check_at": until}})

    async def next_check_after(self, after: datetime | None) -> datetime | None:
        """The earliest `next_check_at` (later than `after`, unless None): the deadline scanner
        sleeps until it."""
        query: dict[str, Any] = {WATCHED: True}
        if after is not None:
            query["next_check_at"] = {"$gt": after}
        found = await self.cases.find_one(
            query, {"next_check_at": 1}, sort=[("next_check_at", ASCENDING)]
        )
        return None if found is None else found["next_check_at"]

    async def counts_by_unit_and_state(self) -> dict[tuple[str, int], int]:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"active": True}},
            {"$group": {"_id": {"unit": "$unit_code", "state": "$state"}, "n": {"$sum": 1}}},
        ]
        counts: dict[tuple[str, int], int] = {}
        async for row in await self.cases.aggregate(pipeline):
            counts[(row["_id"]["unit"], int(row["_id"]["state"]))] = row["n"]
        return counts

    async def overdue_by_unit(self, now: datetime) -> dict[str, int]:
        pipeline: list[dict[str, Any]] = [
            {
                "$match": {
                    "active": True,  # the clock runs only in active states; the index's key
                    "state": {"$in": [int(s) for s in CLOCK_RUNNING]},
                    "due_sort": {"$lt": now},
                }
            },
            {"$group": {"_id": "$unit_code", "n": {"$sum": 1}}},
        ]
        return {row["_id"]: row["n"] async for row in await self.cases.aggregate(pipeline)}

    # -- the catalogue copy ---------------------------------------------------------------------

    async def put_procedure(self, procedure: Procedure) -> None:
        await self.procedures.replace_one(
            {"_id": procedure.code},
            {"_id": procedure.code, **procedure.model_dump(mode="json")},
            upsert=True,
        )

    async def get_procedure(self, code: str) -> Procedure | None:
        document = await self.procedures.find_one({"_id": code})
        return None if document is None else Procedure.model_validate(document)

    # -- the administrators' calendar changes ---------------------------------------------------

    async def calendar_changes_list(self) -> list[CalendarChange]:
        found = self.calendar_changes.find({}).sort([("recorded_at", ASCENDING), ("_id", 1)])
        return [
            CalendarChange(
                day=date.fromisoformat(document["day"]),
                working=document["working"],
                reason=document.get("reason", ""),
            )
            async for document in found
        ]

    async def add_calendar_change(self, change: CalendarChange, actor: str) -> None:
        await self.calendar_changes.insert_one(
            {
                "day": change.day.isoformat(),
                "working": change.working,
                "reason": change.reason,
                "actor": actor,
                "recorded_at": datetime.now(UTC),
            }
        )

    # -- leases ---------------------------------------------------------------------------------

    async def claim_lease(self, name: str, owner: str, ttl: timedelta) -> bool:
        """Hold lease `name` for `ttl` unless another owner holds an unexpired one (CAS)."""
        now = datetime.now(UTC)
        claim = {"$set": {"owner": owner, "until": now + ttl}}
        result = await self.leases.update_one(
            {"_id": name, "$or": [{"owner": owner}, {"until": {"$lt": now}}]}, claim
        )
        if result.modified_count == 1:
            return True
        try:
            await self.leases.insert_one({"_id": name, "owner": owner, "until": now + ttl})
        except DuplicateKeyError:
            return False  # held by someone else
        return True

    async def release_lease(self, name: str, owner: str) -> None:
        await self.leases.delete_one({"_id": name, "owner": owner})


def _active_query(
    unit_code: str | None, procedure_code: str | None, channel: int | None
) -> dict[str, Any]:
    """The worklist's equalities: active cases, of the unit, the procedure, the channel."""
    query: dict[str, Any] = {"active": True}
    if unit_code is not None:
        query["unit_code"] = unit_code
    if procedure_code:
        query["procedure_code"] = procedure_code
    if channel is not None:
        query["channel"] = int(channel)
    return query


def _narrowed(base: dict[str, Any], field: str, condition: dict[str, Any]) -> dict[str, Any]:
    """`base` with `condition` (operators) added on `field`, beside what `base` says of it."""
    existing = base.get(field)
    if existing is None:
        return {**base, field: condition}
    if not (isinstance(existing, dict) and all(k.startswith("$") for k in existing)):
        existing = {"$eq": existing}
    if set(existing) & set(condition):
        return {**base, "$and": [{field: existing}, {field: condition}]}
    return {**base, field: {**existing, **condition}}


def _fields(case: Case) -> dict[str, Any]:
    """The case's fields as stored (the history is appended separately, the key is `_id`)."""
    fields = case.model_dump(mode="python", exclude={"history", "version", "code"})
    fields["state"] = int(case.state)
    fields["channel"] = int(case.channel)
    fields[WATCHED] = case.next_check_at is not None
    if case.processing_time is not None:
        fields["processing_time"] = case.processing_time.model_dump(mode="json")
    return fields


def encode_cursor(rank: int, due: datetime, last_id: str) -> str:
    raw = json.dumps([rank, due.isoformat(), last_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime, str]:
    """Raises `InvalidCursor` (a ValueError) on a cursor this service did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, due, last_id = json.loads(raw)
        parsed = datetime.fromisoformat(due)
        if not isinstance(rank, int) or not isinstance(last_id, str) or parsed.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("invalid cursor") from exc
    return rank, parsed, last_id

"""Reporting's read models in MongoDB: per-dossier facts, quarterly counters, the catalogue copy.

- `<prefix>dossiers` (`_id` = dossier code): the facts gathered from its events, the ids of the
  events applied (`apply_once`), and `counted`, what it has added to the counters so far
  (`{k, f, n}` entries: FerretDB stores no nested arrays).
- `<prefix>counters` (`_id` = `quarter|unit|procedure|channel|level`): `$inc` upserts only.
- `<prefix>procedures` (`_id` = procedure code): the copy of the catalogue topic.

An event's facts (`domain.facts`) are applied to its dossier once; then the dossier's
contributions are derived (`domain.contributions`) and the difference to `counted` is added to the
counters. `counted` is saved (compare-and-set on a version) *before* the `$inc`s: a crash between
the two leaves the counters short by that difference, never doubled;
`python -m services.reporting.rebuild` recomputes everything from the topics. Queries by quarter
are an equality on the counters' indexed `quarter` field.

Every write to a dossier's document adds 1 to its version `v`. The store remembers the documents
it wrote last (an LRU of `CACHED_DOSSIERS`): the next event of such a dossier is applied with its
new `counted` in one compare-and-set write on `v`, without reading the document first, and a
submission (`FactsUpdate.opens_dossier`) creates its document with one insert. When the document
moved on elsewhere (another replica after a rebalance, a rebuild) or exists already, the write
matches nothing and the event takes the general path: apply once and read, then reconcile. Round
trips per event: 2 instead of 3 (the `$inc` of each counter changed is the other, and the
dossiers a batch handles at the same time share those bulk writes, their compare-and-set
updates and their first inserts: `WriteBatcher`; what they add to one counter is summed into
one `$inc` of it: `CounterAdder`).

A rebuild (`services.reporting.rebuild`) fills a fresh set of these collections under its own
prefix and swaps it in by rewriting the pointer document (`read_model_pointer`); the service's
`ActiveStore` follows the pointer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.reporting.domain.contributions import (
    contributions,
    difference,
    parse_key,
    to_triples,
)
from services.reporting.domain.facts import FactsUpdate, with_fact
from shared.contracts.catalogue import Procedure
from shared.runtime.idempotency import APPLIED_EVENTS_FIELD, apply_once_and_read
from shared.runtime.mongo import as_stored, ensure_indexes
from shared.runtime.outbox import merge_updates
from shared.runtime.write_batching import CounterAdder, WriteBatcher

MAX_CAS_ATTEMPTS = 20
# Dossiers whose document as last written is remembered (a few KB each).
CACHED_DOSSIERS = 5_000

# Every index of one read-model set (collection names without the set's prefix;
# `shared.runtime.mongo.ensure_indexes`); repeated queries start with an equality on `_id` or on
# the first
# key of one of these.
INDEXES: dict[str, list[IndexModel]] = {
    # The report's counters of a quarter (each counter carries its key's fields, `parse_key`).
    "counters": [IndexModel([("quarter", ASCENDING), ("_id", ASCENDING)])],
}


def mongo_update(update: FactsUpdate) -> dict[str, Any]:
    """The MongoDB update adding one event's facts to its dossier's document."""
    return {"$push" if update.appended else "$set": {update.name: update.value}}


class ReportingStore:
    """The read models of one set (`prefix`): implements `domain.ports.ReadModelStore`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], prefix: str = "") -> None:
        self.db = db
        self.prefix = prefix
        self.dossiers = db[f"{prefix}dossiers"]
        self.counters = db[f"{prefix}counters"]
        self.procedures = db[f"{prefix}procedures"]
        self._counters = CounterAdder(self.counters)
        self._dossier_inserts = WriteBatcher(self.dossiers)
        self._dossier_updates = WriteBatcher(self.dossiers)
        # Each dossier's document as this store last wrote it (see the module's docstring).
        self._written: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=CACHED_DOSSIERS)

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES, prefix=self.prefix)

    async def save_procedure(self, procedure: Procedure) -> None:
        document = {
            "name": procedure.name,
            "unit_code": procedure.unit_code,
            "unit_name": procedure.unit_name,
            "level": procedure.level,
            "fee_vnd": procedure.total_fee_vnd,
        }
        await self.procedures.replace_one({"_id": procedure.code}, document, upsert=True)

    async def record(self, dossier_code: str, event_id: str, update: FactsUpdate) -> bool:
        """Apply one event's facts once, then bring the counters in line. True if new."""
        known = self._written.pop(dossier_code, None)
        if known is not None and event_id in known[APPLIED_EVENTS_FIELD]:
            self._written[dossier_code] = known
            return False  # a redelivery of an event this store applied and counted
        if known is not None or update.opens_dossier:
            if await self._write_known(dossier_code, known, event_id, update):
                return True
        write = {**mongo_update(update), "$inc": {"v": 1}, "$setOnInsert": {"counted": []}}
        # The facts as this write left them come back with it: no read before reconciling.
        facts = await apply_once_and_read(self.dossiers, {"_id": dossier_code}, event_id, write)
        # Reconciled even for a redelivery: it is a no-op unless an earlier attempt stopped early.
        await self.reconcile(dossier_code, facts)
        return facts is not None

    async def _write_known(
        self, dossier_code: str, known: dict[str, Any] | None, event_id: str, update: FactsUpdate
    ) -> bool:
        """Apply the event to the dossier as remembered (`known`, else a new dossier) together
        with its new `counted`, in one write that matches only that version; then add the
        difference to the counters. False when the stored document is not that version."""
        base = known or {"_id": dossier_code, APPLIED_EVENTS_FIELD: [], "counted": [], "v": 0}
        facts = with_fact(base, update, as_stored(update.value))
        wanted = contributions(facts)
        delta = difference(base.get("counted", []), wanted)
        facts["counted"] = to_triples(wanted)
        facts[APPLIED_EVENTS_FIELD] = [*base[APPLIED_EVENTS_FIELD], event_id]
        facts["v"] = base["v"] + 1
        if known is None:
            try:
                await self._dossier_inserts.insert(facts)
            except DuplicateKeyError:
                return False  # the dossier has a document already
        else:
            written = await self._dossier_updates.update_if(
                {"_id": dossier_code, "v": known["v"]},
                merge_updates(
                    mongo_update(update),
                    {"$push": {APPLIED_EVENTS_FIELD: event_id}},
                    {"$set": {"counted": facts["counted"]}, "$inc": {"v": 1}},
                ),
            )
            if not written:
                return False
        self._written[dossier_code] = facts
        await self._add(delta)
        return True

    async def reconcile(self, dossier_code: str, facts: dict[str, Any] | None = None) -> None:
        """Bring the counters in line with the dossier's facts (`facts`: as just written, else
        read here)."""
        for _ in range(MAX_CAS_ATTEMPTS):
            if facts is None:
                facts = await self.dossiers.find_one({"_id": dossier_code})
                if facts is None:
                    return
            wanted = contributions(facts)
            delta = difference(facts.get("counted", []), wanted)
            if not delta:
                self._written[dossier_code] = facts
                return
            counted = to_triples(wanted)
            saved = await self._dossier_updates.update_if(
                {"_id": dossier_code, "v": facts["v"]},
                {"$set": {"counted": counted}, "$inc": {"v": 1}},
            )
            if not saved:
                facts = None  # another consumer moved the dossier on: read and derive again
                continue
            self._written[dossier_code] = {**facts, "counted": counted, "v": facts["v"] + 1}
            await self._add(delta)
            return
        raise RuntimeError(f"could not reconcile {dossier_code}: too much contention")

    async def _add(self, delta: dict[str, dict[str, int]]) -> None:
        """Add a dossier's change of contributions to the counters (in the bulk writes the
        dossiers handled at the same time share)."""
        await asyncio.gather(
            *(self._counters.add(key, fields, parse_key(key)) for key, fields in delta.items())
        )

    async def counters_for(self, quarters: Iterable[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for quarter in quarters:
            cursor = self.counters.find({"quarter": quarter}).sort("_id", ASCENDING)
            rows.extend([row async for row in cursor])
        return rows

    async def all_counters(self) -> list[dict[str, Any]]:
        return [row async for row in self.counters.find({})]

    async def all_procedures(self) -> list[dict[str, Any]]:
        return [row async for row in self.procedures.find({})]


POINTER_COLLECTION = "read_model_pointer"
POINTER_ID = "active"
COLLECTIONS = ("dossiers", "counters", "procedures")


async def read_active_prefix(db: AsyncDatabase[dict[str, Any]]) -> str:
    """The prefix of the active read-model set ("" until a rebuild has swapped one in)."""
    pointer = await db[POINTER_COLLECTION].find_one({"_id": POINTER_ID})
    return "" if pointer is None else str(pointer["prefix"])


async def swap_active_prefix(db: AsyncDatabase[dict[str, Any]], prefix: str) -> None:
    """Make the set under `prefix` the active one (one write: every `ActiveStore` follows)."""
    await db[POINTER_COLLECTION].update_one(
        {"_id": POINTER_ID},
        {"$set": {"prefix": prefix, "swapped_at": datetime.now(UTC)}},
        upsert=True,
    )


async def drop_read_models(db: AsyncDatabase[dict[str, Any]], prefix: str) -> None:
    """Drop every collection of the set under `prefix`."""
    for name in COLLECTIONS:
        await db.drop_collection(f"{prefix}{name}")


class ActiveStore(ReportingStore):
    """The store of the service: every call goes to the set the pointer names.

    The pointer is read at the first call and again when older than `ttl` seconds, so a rebuild's
    swap reaches the consumer and the API within `ttl`. Each call runs wholly on one set.
    """

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], ttl: float = 1.0, clock: Any = None
    ) -> None:
        super().__init__(db, "")
        self.ttl = ttl
        self._clock = clock or time.monotonic
        self._checked_at: float | None = None
        self._reading = asyncio.Lock()
        self._current = ReportingStore(db, "")

    async def current(self) -> ReportingStore:
        if self._stale():
            async with self._reading:  # the calls that find it stale together share one read
                if self._stale():
                    now = self._clock()
                    prefix = await read_active_prefix(self.db)
                    if prefix != self._current.prefix:
                        self._current = ReportingStore(self.db, prefix)
                    self._checked_at = now
        return self._current

    def _stale(self) -> bool:
        return self._checked_at is None or self._clock() - self._checked_at >= self.ttl

    async def ensure_indexes(self) -> None:
        await (await self.current()).ensure_indexes()

    async def save_procedure(self, procedure: Procedure) -> None:
        await (await self.current()).save_procedure(procedure)

    async def record(self, dossier_code: str, event_id: str, update: FactsUpdate) -> bool:
        return await (await self.current()).record(dossier_code, event_id, update)

    async def reconcile(self, dossier_code: str, facts: dict[str, Any] | None = None) -> None:
        await (await self.current()).reconcile(dossier_code, facts)

    async def counters_for(self, quarters: Iterable[str]) -> list[dict[str, Any]]:
        return await (await self.current()).counters_for(quarters)

    async def all_counters(self) -> list[dict[str, Any]]:
        return await (await self.current()).all_counters()

    async def all_procedures(self) -> list[dict[str, Any]]:
        return await (await self.current()).all_procedures()

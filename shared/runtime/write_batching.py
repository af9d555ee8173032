"""Writes that simultaneous callers share: while one round trip to a collection is in flight, the
callers that come meanwhile wait together for the next one. Concurrent handlers (a batch
consumer's dossiers, simultaneous requests) then share round trips and, on FerretDB, the
collection's write lock; the busier the service, the fewer commands per dossier."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

from pymongo import InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from shared.runtime.mongo import BULK_CHUNK

DUPLICATE_KEY = 11000
# Marks the document an `update_if` inserts where none had the filter's `_id` (deleted at once).
STUB_FIELD = "_update_if_stub"


class WriteBatcher:
    """Writes to one collection whose callers need no result but success (or, for a
    compare-and-set `update_if`, whether it matched), sent together: a write
    asked for while a bulk write is in flight goes in the next one (callers of at most
    `BULK_CHUNK` operations in all per write, and at least one), so concurrent handlers (a batch
    consumer's dossiers, simultaneous requests) share round trips, the collection's write lock
    and, for inserts, one multi-row `INSERT` in FerretDB. Each caller waits until the write
    carrying its operations is done and gets its own error, if any: `DuplicateKeyError` for a
    document whose key exists, or the write's error when the server's answer does not say which
    operation failed. The operations of one caller keep their order, and so do two updates of
    one document (an unordered bulk write is applied one operation at a time by MongoDB and
    FerretDB alike); PyMongo sends a bulk write's inserts before its updates, so an insert and an
    update of one document must not be asked for at the same time (one after the other is fine).
    """

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self.collection = collection
        self._queued: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None

    async def update(
        self, document_filter: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool
    ) -> None:
        await self._join([UpdateOne(document_filter, update, upsert=upsert)])

    async def update_if(
        self, document_filter: Mapping[str, Any], update: Mapping[str, Any]
    ) -> bool:
        """A compare-and-set update of one document: applied if `document_filter` (an `_id`
        equality and more conditions) matches; False when it matches nothing (the document moved
        on, or there is none).

        A bulk write's answer counts the matches of all its updates together, so each is sent as
        an upsert, and the server's answer says which did not match: where the `_id` exists but
        the rest of the filter does not hold, the upsert is refused as a duplicate `_id`; where
        no document has it, the one it inserts (marked `STUB_FIELD`) is deleted at once. Not for
        documents that may be deleted meanwhile (a reader could see the stub). On FerretDB this
        needs devstack's patch 0007 (upstream stops a bulk update at its first refusal)."""
        if "_id" not in document_filter:
            raise ValueError("update_if needs an _id equality in its filter")
        on_insert = {**update.get("$setOnInsert", {}), STUB_FIELD: True}
        stubbing = {**update, "$setOnInsert": on_insert}
        matched = await self._join([UpdateOne(document_filter, stubbing, upsert=True)], cas=True)
        return bool(matched)

    async def insert(self, *documents: Mapping[str, Any]) -> None:
        """Insert `documents` (all of them; on `DuplicateKeyError`, the others are inserted)."""
        await self._join([InsertOne(document) for document in documents])

    async def _join(self, operations: list[Any], *, cas: bool = False) -> bool | None:
        """Queue one caller's operations; with `cas`, one `update_if` (its outcome returned)."""
        done: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._queued.append(_Queued(operations, done, cas))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        return await done

    async def _write_queued(self) -> None:
        batch: list[_Queued] = []
        try:
            await asyncio.sleep(0)  # the handlers running in this turn of the loop join in
            while self._queued:
                batch, self._queued = _take(self._queued, BULK_CHUNK)
                await self._write(batch)
                batch = []
        except BaseException:  # cancelled (the service stops): nobody waits forever
            for queued in [*batch, *self._queued]:
                queued.done.cancel()
            self._queued = []
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[_Queued]) -> None:
        operations = [operation for queued in batch for operation in queued.operations]
        outcomes: list[BaseException | None] = [None] * len(operations)
        upserted: dict[int, Any] = {}  # operation index: the `_id` its upsert inserted
        try:
            result = await self.collection.bulk_write(operations, ordered=False)
            upserted = dict(result.upserted_ids or {})
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                code, message = error.get("code"), error.get("errmsg")
                refused = DuplicateKeyError if code == DUPLICATE_KEY else WriteError
                outcomes[error["index"]] = refused(message, code, error)
            upserted = {u["index"]: u["_id"] for u in exc.details.get("upserted", [])}
        except Exception as exc:
            # An outage, or an answer PyMongo cannot read: which operations were applied is
            # unknown, so none is sent again: every caller gets the error.
            outcomes = [exc] * len(operations)
        conditional = [queued.cas for queued in batch for _ in queued.operations]
        stubs = {i: key for i, key in upserted.items() if conditional[i]}
        if stubs:
            await self._delete_stubs(stubs, outcomes)
        start = 0
        for queued in batch:
            end = start + len(queued.operations)
            failure = next((o for o in outcomes[start:end] if o is not None), None)
            first, start = start, end
            if queued.done.done():
                continue  # its caller was cancelled
            if queued.cas and (failure is None or isinstance(failure, DuplicateKeyError)):
                # Refused as a duplicate `_id`, or a stub inserted: the filter matched nothing.
                queued.done.set_result(failure is None and first not in upserted)
                continue
            if failure is None:
                queued.done.set_result(None)
            else:
                queued.done.set_exception(failure)

    async def _delete_stubs(
        self, stubs: dict[int, Any], outcomes: list[BaseException | None]
    ) -> None:
        """Delete what `update_if`s inserted where no document had their `_id` (operation index:
        `_id`); a failure is those operations' outcome."""
        try:
            await self.collection.delete_many(
                {"_id": {"$in": list(stubs.values())}, STUB_FIELD: True}
            )
        except Exception as exc:
            for index in stubs:
                outcomes[index] = exc


class _Queued(NamedTuple):
    """One caller's operations, its wait, and whether it is an `update_if`."""

    operations: list[Any]
    done: asyncio.Future[bool | None]
    cas: bool


def _take(queued: list[_Queued], limit: int) -> tuple[list[_Queued], list[_Queued]]:
    """The first callers whose operations fit in `limit` (the first caller always), and the rest."""
    count, taken = 0, 0
    for operations, _, _ in queued:
        if taken and count + len(operations) > limit:
            break
        count += len(operations)
        taken += 1
    return queued[:taken], queued[taken:]


class CounterAdder:
    """Amounts added to counter documents (`$inc` upserts by `_id`), merged per document while a
    write is in flight: the callers that add to one counter meanwhile share one update of it in
    the next bulk write (at most `BULK_CHUNK` counters per write), however many they are. Each
    caller waits until the write carrying its amounts is done and gets that counter's error, if
    any (all of the write's counters get the error when the server's answer does not say which
    failed: none is sent again)."""

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self.collection = collection
        self._pending: dict[Any, _Sum] = {}
        self._writer: asyncio.Task[None] | None = None

    async def add(
        self, key: Any, amounts: Mapping[str, int], on_insert: Mapping[str, Any] | None = None
    ) -> None:
        """Add `amounts` to the fields of counter `key` (created with `on_insert` if new)."""
        pending = self._pending.get(key)
        if pending is None:
            done = asyncio.get_running_loop().create_future()
            pending = self._pending[key] = _Sum(Counter(), dict(on_insert or {}), done)
        pending.amounts.update(amounts)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        await asyncio.shield(pending.done)  # shared: one caller's cancellation is not the others'

    async def _write_pending(self) -> None:
        taken: dict[Any, _Sum] = {}
        try:
            await asyncio.sleep(0)  # the callers running in this turn of the loop join in
            while self._pending:
                keys = list(self._pending)[:BULK_CHUNK]
                taken = {key: self._pending.pop(key) for key in keys}
                await self._write(taken)
                taken = {}
        except BaseException:  # cancelled (the service stops): nobody waits forever
            for pending in [*taken.values(), *self._pending.values()]:
                pending.done.cancel()
            self._pending = {}
            raise
        finally:
            self._writer = None

    async def _write(self, taken: dict[Any, _Sum]) -> None:
        sums = list(taken.items())
        outcomes: list[BaseException | None] = [None] * len(sums)
        operations = [
            UpdateOne({"_id": key}, _increment(pending), upsert=True) for key, pending in sums
        ]
        try:
            await self.collection.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                outcomes[error["index"]] = WriteError(error.get("errmsg"), error.get("code"), error)
        except Exception as exc:
            outcomes = [exc] * len(sums)
        for (_, pending), failure in zip(sums, outcomes, strict=True):
            if failure is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(failure)


class _Sum(NamedTuple):
    """What the callers added to one counter since the last write, and their wait."""

    amounts: Counter[str]
    on_insert: dict[str, Any]
    done: asyncio.Future[None]


def _increment(pending: _Sum) -> dict[str, Any]:
    update: dict[str, Any] = {"$inc": dict(pending.amounts)}
    if pending.on_insert:
        update["$setOnInsert"] = pending.on_insert
    return update


class NumberDrawer:
    """Numbers from counter documents (`{"_id": key, "value": last number drawn}`), atomic across
    replicas: the draws asked for one counter while its `findAndModify` is in flight take their
    numbers together in the next one (`$inc` by how many they are), in the order they were asked.
    Every caller gets its own number, or the round trip's error."""

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self.collection = collection
        self._waiting: dict[str, list[asyncio.Future[int]]] = {}
        self._drawers: dict[str, asyncio.Task[None]] = {}

    async def draw(self, key: str) -> int:
        drawn: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(drawn)
        if key not in self._drawers:
            self._drawers[key] = asyncio.create_task(self._draw_waiting(key))
        return await drawn

    async def _draw_waiting(self, key: str) -> None:
        waiting: list[asyncio.Future[int]] = []
        try:
            await asyncio.sleep(0)  # the callers running in this turn of the loop join in
            while waiting := [f for f in self._waiting.pop(key, []) if not f.done()]:
                await self._draw(key, waiting)
                waiting = []
        except BaseException:  # cancelled (the service stops): nobody waits forever
            for drawn in [*waiting, *self._waiting.pop(key, [])]:
                drawn.cancel()
            raise
        finally:
            del self._drawers[key]

    async def _draw(self, key: str, waiting: list[asyncio.Future[int]]) -> None:
        try:
            counter = await self.collection.find_one_and_update(
                {"_id": key},
                {"$inc": {"value": len(waiting)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except Exception as exc:
            for drawn in waiting:
                if not drawn.done():
                    drawn.set_exception(exc)
            return
        assert counter is not None  # upserted
        first = int(counter["value"]) - len(waiting) + 1
        for number, drawn in enumerate(waiting, start=first):
            if not drawn.done():  # a caller cancelled meanwhile leaves its number unused
                drawn.set_result(number)

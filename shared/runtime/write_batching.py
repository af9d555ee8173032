"""Writes that simultaneous callers share: while one round trip to a collection is in flight, the
callers that come meanwhile wait together for the next one. Concurrent handlers (a batch
consumer's dossiers, simultaneous requests) then share round trips and, on FerretDB, the
collection's write lock; the busier the service, the fewer commands per dossier."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pymongo import InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from shared.runtime.mongo import BULK_CHUNK

DUPLICATE_KEY = 11000


class WriteBatcher:
    """Writes to one collection whose callers need no result but success, sent together: a write
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

    async def insert(self, *documents: Mapping[str, Any]) -> None:
        """Insert `documents` (all of them; on `DuplicateKeyError`, the others are inserted)."""
        await self._join([InsertOne(document) for document in documents])

    async def _join(self, operations: list[Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((operations, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        await done

    async def _write_queued(self) -> None:
        batch: list[_Queued] = []
        try:
            await asyncio.sleep(0)  # the handlers running in this turn of the loop join in
            while self._queued:
                batch, self._queued = _take(self._queued, BULK_CHUNK)
                await self._write(batch)
                batch = []
        except BaseException:  # cancelled (the service stops): nobody waits forever
            for _, done in [*batch, *self._queued]:
                done.cancel()
            self._queued = []
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[_Queued]) -> None:
        operations = [operation for operations, _ in batch for operation in operations]
        outcomes: list[BaseException | None] = [None] * len(operations)
        try:
            await self.collection.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                code, message = error.get("code"), error.get("errmsg")
                refused = DuplicateKeyError if code == DUPLICATE_KEY else WriteError
                outcomes[error["index"]] = refused(message, code, error)
        except Exception as exc:
            # An outage, or an answer PyMongo cannot read (FerretDB's to a bulk write with a
            # refused update: the others are applied). Which operations were applied is
            # unknown, so none is sent again: every caller gets the error.
            outcomes = [exc] * len(operations)
        start = 0
        for operations_of_caller, done in batch:
            end = start + len(operations_of_caller)
            failure = next((o for o in outcomes[start:end] if o is not None), None)
            start = end
            if done.done():
                continue  # its caller was cancelled
            if failure is None:
                done.set_result(None)
            else:
                done.set_exception(failure)


# One caller's operations and its wait.
_Queued = tuple[list[Any], "asyncio.Future[None]"]


def _take(queued: list[_Queued], limit: int) -> tuple[list[_Queued], list[_Queued]]:
    """The first callers whose operations fit in `limit` (the first caller always), and the rest."""
    count, taken = 0, 0
    for operations, _ in queued:
        if taken and count + len(operations) > limit:
            break
        count += len(operations)
        taken += 1
    return queued[:taken], queued[taken:]


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

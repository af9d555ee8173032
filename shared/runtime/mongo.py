"""MongoDB client factory (PyMongo's native async API; Motor reached end of life in May 2026).

The code runs unchanged on MongoDB and on FerretDB, so it uses single-document atomicity only, no
change streams, no TTL or partial indexes, and only the aggregation stages both support.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel, InsertOne, UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from shared.runtime.metrics import MONGO_COMMANDS

# FerretDB 1.24 holds one backend connection per statement of an update command until the command
# ends, from a pool (SQLite: 100; PostgreSQL: devstack sets 250): an update command of more
# statements than the pool has connections waits forever, and every write behind it with it. Bulk
# writes are therefore sent in chunks small enough for several to run side by side.
BULK_CHUNK = 25


# Set to 0 to stop counting database commands (see `CommandCounter`); counting is on otherwise.
COMMAND_COUNTS_ENV = "DVC_MONGO_COMMAND_COUNTS"


class CommandCounter(monitoring.CommandListener):
    """Counts every command a client sends (each is one round trip) by name and collection, in
    `dvc_mongo_commands_total{service, command, collection}`: how many reads and writes a service
    makes per dossier, read from its `/metrics` (`bench/bench_e2e.py`). Costs a dictionary look-up
    and a counter increment per command (measured: within the noise of a FerretDB round trip)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._counters: dict[tuple[str, str], Any] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        target = event.command.get("collection" if name == "getMore" else name)
        key = (name, target if isinstance(target, str) else "")
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = MONGO_COMMANDS.labels(self.service, *key)
        counter.inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def command_counts_enabled() -> bool:
    return os.environ.get(COMMAND_COUNTS_ENV, "1").strip().lower() not in ("0", "false", "no")


# No operation waits forever on a server that stopped answering: a read of the socket that takes
# longer than this fails with NetworkTimeout (a transient failure: consumers wait it out, HTTP
# answers 503). Long scans are not affected: each batch is a separate read.
SOCKET_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_MS = 5_000


def create_mongo_client(url: str, **options: Any) -> AsyncMongoClient[dict[str, Any]]:
    appname = options.pop("appname", "dvc-platform")
    listeners = list(options.pop("event_listeners", ()))
    if command_counts_enabled():
        listeners.append(CommandCounter(appname))
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=options.pop("serverSelectionTimeoutMS", 5000),
        socketTimeoutMS=options.pop("socketTimeoutMS", SOCKET_TIMEOUT_MS),
        connectTimeoutMS=options.pop("connectTimeoutMS", CONNECT_TIMEOUT_MS),
        appname=appname,
        event_listeners=listeners,
        **options,
    )


async def ping(client: AsyncMongoClient[Any]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


# A store's indexes, collection name → indexes: each store module declares them in one constant,
# `INDEXES`, applied at start-up by `ensure_indexes`. Repeated queries start with an equality on the
# first key of one of them (or on `_id`): MongoDB's btree serves it (and the range or sort on the
# following keys), and on devstack's FerretDB/PostgreSQL the equality is pushed down to SQL and
# served by the index's GIN twin (see docs/devstack.md, "Every repeated query uses an index";
# `tests/integration/test_query_indexes.py` checks each store's queries).
IndexDeclaration = Mapping[str, Sequence[IndexModel]]


async def ensure_indexes(
    db: AsyncDatabase[Any], declared: IndexDeclaration, *, prefix: str = ""
) -> None:
    """Create the declared indexes (idempotent), on `<prefix><collection>`.

    One index per command: FerretDB 1.24 panics (and drops the connection) on a `createIndexes` of
    several indexes that all exist already, i.e. at every start but the first."""
    for collection, indexes in declared.items():
        for index in indexes:
            await db[f"{prefix}{collection}"].create_indexes([index])


def gridfs_indexes(bucket: str) -> dict[str, list[IndexModel]]:
    """The indexes GridFS makes itself at a bucket's first upload (same keys and options, so
    declaring them is a no-op there): chunks by file, files by name and date."""
    return {
        f"{bucket}.files": [IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)])],
        f"{bucket}.chunks": [IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)],
    }


async def bulk_write_in_chunks(
    collection: AsyncCollection[Any],
    operations: Sequence[Any],
    *,
    ordered: bool = False,
    chunk: int = BULK_CHUNK,
) -> int:
    """`bulk_write` in chunks of at most `chunk` (≤ `BULK_CHUNK`) operations (see above); returns
    how many documents were modified. Not atomic as a whole — neither is one unordered bulk
    write."""
    size = min(chunk, BULK_CHUNK)
    modified = 0
    for start in range(0, len(operations), size):
        batch = list(operations[start : start + size])
        modified += (await collection.bulk_write(batch, ordered=ordered)).modified_count
    return modified


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


DUPLICATE_KEY = 11000

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

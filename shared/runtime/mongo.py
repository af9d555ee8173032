"""MongoDB client factory (PyMongo's native async API; Motor reached end of life in May 2026).

The code runs unchanged on MongoDB and on FerretDB, so it uses single-document atomicity only, no
change streams, no TTL or partial indexes, and only the aggregation stages both support.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import bson
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.runtime.metrics import MONGO_COMMANDS

# Upstream FerretDB 1.24 holds one backend connection per statement of an update command until the
# command ends, from a pool (SQLite: 100; PostgreSQL: devstack sets 250): an update command of more
# statements than the pool has connections waits forever, and every write behind it with it
# (devstack's build gives each back per statement: patch 0009). Bulk writes are therefore sent in
# chunks small enough for several to run side by side on any FerretDB.
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


# How the services' clients hand documents back (`create_mongo_client`).
AS_READ: bson.CodecOptions[dict[str, Any]] = bson.CodecOptions(tz_aware=True)


def as_stored(value: dict[str, Any]) -> dict[str, Any]:
    """`value` as it reads back from the database (datetimes in UTC to the millisecond...), so
    that what a service derives from a document it wrote is what a read would give."""
    return bson.decode(bson.encode(value), codec_options=AS_READ)


def upserted_document(document_id: Any, update: Mapping[str, Any]) -> dict[str, Any]:
    """The document an upsert of `update` inserts where no document has `document_id` (its filter
    an `_id` equality and conditions that add no field): for a writer that inserts it instead.
    Top-level fields only; `$set`, `$setOnInsert`, `$inc`, and `$push` or `$addToSet` of a value
    or of `$each` values."""
    document: dict[str, Any] = {"_id": document_id}
    for operator, fields in update.items():
        for field, value in fields.items():
            if "." in field or field == "_id":
                raise ValueError(f"upserted_document takes top-level fields, not {field!r}")
            if operator in ("$set", "$setOnInsert", "$inc"):
                document[field] = value
            elif operator in ("$push", "$addToSet"):
                each = isinstance(value, Mapping) and "$each" in value
                values = value["$each"] if each else [value]
                if operator == "$addToSet":
                    values = [v for i, v in enumerate(values) if v not in values[:i]]
                document[field] = list(values)
            else:
                raise ValueError(f"upserted_document does not apply {operator}")
    return document


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

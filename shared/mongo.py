"""MongoDB client factory (PyMongo's native async API; Motor reached end of life in May 2026).

The code runs unchanged on MongoDB and on FerretDB, so it uses single-document atomicity only, no
change streams, no TTL or partial indexes, and only the aggregation stages both support.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

# FerretDB 1.24 holds one SQLite connection per statement of an update command until the command
# ends, from a pool of 100: an update command of more than about 100 statements waits forever for
# a 101st, and every write behind it with it. Bulk writes are therefore sent in chunks.
BULK_CHUNK = 50


def create_mongo_client(url: str, **options: Any) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=options.pop("serverSelectionTimeoutMS", 5000),
        appname=options.pop("appname", "dvc-platform"),
        **options,
    )


async def ping(client: AsyncMongoClient[Any]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


async def bulk_write_in_chunks(
    collection: AsyncCollection[Any],
    operations: Sequence[Any],
    *,
    ordered: bool = False,
    chunk: int = BULK_CHUNK,
) -> None:
    """`bulk_write` in chunks of at most `chunk` (≤ `BULK_CHUNK`) operations (see above). Not
    atomic as a whole — neither is one unordered bulk write."""
    size = min(chunk, BULK_CHUNK)
    for start in range(0, len(operations), size):
        await collection.bulk_write(list(operations[start : start + size]), ordered=ordered)

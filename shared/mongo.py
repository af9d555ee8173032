"""MongoDB client factory (PyMongo's native async API; Motor reached end of life in May 2026).

The code runs unchanged on MongoDB and on FerretDB, so it uses single-document atomicity only, no
change streams, no TTL or partial indexes, and only the aggregation stages both support.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient


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

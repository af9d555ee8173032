"""The issued result documents: bytes in processing's GridFS bucket (`RESULTS_BUCKET`; its
indexes are declared with the case store's, `store.INDEXES`). A document is named by its storage
id (the GridFS file id as text), which travels in the `issue_result` event so that intake can
fetch the bytes over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from services.processing.adapters.store import RESULTS_BUCKET


@dataclass(frozen=True)
class StoredResult:
    storage_id: str
    file_name: str | None
    metadata: dict[str, Any]


class ResultStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name=RESULTS_BUCKET)

    async def upload(self, file_name: str, data: bytes, metadata: dict[str, Any]) -> str:
        """Store the bytes; returns their storage id."""
        return str(await self.bucket.upload_from_stream(file_name, data, metadata=metadata))

    async def delete(self, storage_id: str) -> None:
        await self.bucket.delete(ObjectId(storage_id))

    async def find(self, storage_id: str) -> StoredResult | None:
        """The document's name and metadata; None when there is none (or the id is not one)."""
        object_id = _object_id(storage_id)
        if object_id is None:
            return None
        found = [f async for f in self.bucket.find({"_id": object_id}).limit(1)]
        if not found:
            return None
        return StoredResult(storage_id, found[0].filename, found[0].metadata or {})

    async def read(self, storage_id: str) -> bytes:
        stream = await self.bucket.open_download_stream(ObjectId(storage_id))
        return await stream.read()


def _object_id(storage_id: str) -> ObjectId | None:
    try:
        return ObjectId(storage_id)
    except (InvalidId, TypeError):
        return None

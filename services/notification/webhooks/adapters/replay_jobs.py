"""The `webhook_replays` collection: replay jobs and their progress (`_id` = job id; every query
is by `_id`)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


class ReplayJobStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.jobs: AsyncCollection[Document] = db["webhook_replays"]

    async def insert(self, job: Document) -> None:
        await self.jobs.insert_one(job)

    async def job(self, job_id: str) -> Document | None:
        return await self.jobs.find_one({"_id": job_id})

    async def update(self, job_id: str, fields: Document) -> None:
        await self.jobs.update_one({"_id": job_id}, {"$set": fields})

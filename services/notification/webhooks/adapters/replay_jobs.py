"""The `webhook_replays` collection: replay jobs and their progress (`_id` = job id; the running
jobs of an agency are counted by `agency_id`, see `store.INDEXES`).

A running job's `heartbeat_at` moves at every batch it reads; a job whose heartbeat stopped (its
replica ended meanwhile) no longer counts as running against its agency's bound.
"""

from __future__ import annotations

from datetime import datetime
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

    async def running(self, agency_id: str, alive_since: datetime) -> int:
        """How many of the agency's replays run (their heartbeat since `alive_since`)."""
        return await self.jobs.count_documents(
            {"agency_id": agency_id, "status": "running", "heartbeat_at": {"$gte": alive_since}}
        )

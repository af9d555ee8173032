"""MongoDB collections of the webhook subscriptions.

- `webhook_agencies`: the agencies allowed to subscribe (created by an operator).
- `webhook_api_keys`: `_id` = SHA-256 of an agency's API key (the key itself is never stored; it
  is 256 random bits, so a plain hash is enough), with the agency id. An agency left without a
  valid key (all revoked) receives nothing: its subscriptions are disabled and their pending
  deliveries failed (`revoke_keys`).
- `webhook_subscriptions`: URL, filters, the signing secret sealed (see `sealing`), status
  (active / paused / disabled).
- `webhook_deliveries`: one document per (subscription, event), `_id` = `<subscription>:<event
  id>`: status, attempts, times, last answer (the delivery log, metadata only), and the body
  while it is pending (public data only; removed once delivered).
- (`webhook_replays`, the replay jobs: `replay_jobs.ReplayJobStore`.)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.notification.webhooks.domain.subscriptions import DeliveryStatus, SubscriptionStatus
from shared.runtime.mongo import bulk_write_in_chunks, ensure_indexes

Document = dict[str, Any]
API_KEY_PREFIX = "dvcak_"
DUPLICATE_KEY = 11000

# Every index of the webhook collections (`shared.runtime.mongo.ensure_indexes`); repeated queries
# start with an equality on `_id` or on the first key of one of these.
INDEXES: dict[str, list[IndexModel]] = {
    "webhook_api_keys": [IndexModel([("agency_id", ASCENDING)])],
    "webhook_subscriptions": [
        IndexModel([("agency_id", ASCENDING)]),
        IndexModel([("status", ASCENDING)]),  # the dispatcher's refresh
    ],
    "webhook_deliveries": [
        # The dispatcher's reload (pending, in order), redrive.
        IndexModel([("subscription_id", ASCENDING), ("status", ASCENDING), ("seq", ASCENDING)]),
        # The delivery log, newest first.
        IndexModel([("subscription_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    # The replays running per agency (`replay_jobs.ReplayJobStore.running`).
    "webhook_replays": [IndexModel([("agency_id", ASCENDING), ("status", ASCENDING)])],
}
KEYS_REVOKED = "agency keys revoked"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def valid_keys(agency_id: str) -> Document:
    """The filter of an agency's keys not revoked."""
    return {"agency_id": agency_id, "revoked_at": {"$exists": False}}


def delivery_id(subscription_id: str, event_id: str) -> str:
    return f"{subscription_id}:{event_id}"


class WebhookStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.agencies: AsyncCollection[Document] = db["webhook_agencies"]
        self.api_keys: AsyncCollection[Document] = db["webhook_api_keys"]
        self.subscriptions: AsyncCollection[Document] = db["webhook_subscriptions"]
        self.deliveries: AsyncCollection[Document] = db["webhook_deliveries"]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    # ------------------------------------------------------------------ agencies and keys

    async def create_agency(self, agency_id: str, name: str) -> str:
        """Create an agency (or add a key to it); returns its new API key, shown only once."""
        now = datetime.now(UTC)
        await self.agencies.update_one(
            {"_id": agency_id},
            {"$setOnInsert": {"name": name, "created_at": now}},
            upsert=True,
        )
        key = new_api_key()
        await self.api_keys.insert_one(
            {"_id": hash_api_key(key), "agency_id": agency_id, "created_at": now}
        )
        return key

    async def agency_for_key(self, key: str) -> Document | None:
        found = await self.api_keys.find_one({"_id": hash_api_key(key)})
        if found is None or found.get("revoked_at"):
            return None
        return await self.agencies.find_one({"_id": found["agency_id"]})

    async def revoke_keys(self, agency_id: str, *, keep_newest: bool = False) -> int:
        """Revoke the agency's keys (all, or all but the newest: a rotation); returns how many.
        With no valid key left, the agency's deliveries stop: its subscriptions are disabled and
        their pending deliveries failed (redrivable once it has a key and enables them again);
        the dispatchers stop them at their next refresh."""
        valid = valid_keys(agency_id)
        query = dict(valid)
        if keep_newest:
            newest = (
                await self.api_keys.find(valid).sort("created_at", DESCENDING).limit(1).to_list()
            )
            if newest:
                query["_id"] = {"$ne": newest[0]["_id"]}
        now = datetime.now(UTC)
        result = await self.api_keys.update_many(query, {"$set": {"revoked_at": now}})
        if await self.api_keys.find_one(valid) is None:
            await self._stop_deliveries(agency_id, now)
        return result.modified_count

    async def _stop_deliveries(self, agency_id: str, now: datetime) -> None:
        for subscription in await self.subscriptions_of(agency_id):
            if subscription.get("status") != SubscriptionStatus.DISABLED:
                await self.subscriptions.update_one(
                    {"_id": subscription["_id"]},
                    {
                        "$set": {
                            "status": SubscriptionStatus.DISABLED,
                            "disabled_reason": KEYS_REVOKED,
                            "updated_at": now,
                        }
                    },
                )
            await self.deliveries.update_many(
                {"subscription_id": subscription["_id"], "status": DeliveryStatus.PENDING},
                {
                    "$set": {"status": DeliveryStatus.FAILED, "last_error": KEYS_REVOKED},
                    "$unset": {"next_attempt_at": ""},
                },
            )

    # ------------------------------------------------------------------ subscriptions

    async def insert_subscription(self, document: Document) -> None:
        await self.subscriptions.insert_one(document)

    async def subscription(self, subscription_id: str) -> Document | None:
        return await self.subscriptions.find_one({"_id": subscription_id})

    async def subscriptions_of(self, agency_id: str) -> list[Document]:
        cursor = self.subscriptions.find({"agency_id": agency_id}).sort("created_at", ASCENDING)
        return await cursor.to_list()

    async def live_subscriptions(self) -> list[Document]:
        """Every subscription that receives events (active or paused)."""
        # One equality per status: `$in` is not pushed down by FerretDB (it would read them all).
        found: list[Document] = []
        for status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED):
            found.extend(await self.subscriptions.find({"status": status}).to_list())
        return found

    async def update_subscription(self, subscription_id: str, fields: Document) -> Document | None:
        fields = {**fields, "updated_at": datetime.now(UTC)}
        await self.subscriptions.update_one({"_id": subscription_id}, {"$set": fields})
        return await self.subscription(subscription_id)

    async def delete_subscription(self, subscription_id: str) -> None:
        await self.subscriptions.delete_one({"_id": subscription_id})

    # ------------------------------------------------------------------ deliveries

    async def insert_deliveries(self, documents: list[Document]) -> set[str]:
        """Insert new deliveries and return their ids; those that exist already (a redelivered
        event) are kept as they are."""
        if not documents:
            return set()
        ids = [document["_id"] for document in documents]
        try:
            await self.deliveries.bulk_write(
                [InsertOne(document) for document in documents], ordered=False
            )
        except BulkWriteError as exc:
            errors = exc.details["writeErrors"]
            if any(error["code"] != DUPLICATE_KEY for error in errors):
                raise
            duplicates = {error["index"] for error in errors}
            return {_id for index, _id in enumerate(ids) if index not in duplicates}
        return set(ids)

    async def write_outcomes(self, updates: Iterable[tuple[str, Document]]) -> None:
        """Record attempt outcomes (`_id`, update), in as few round trips as FerretDB allows.
        Only a delivery still pending takes a retry or a failure (one failed meanwhile, e.g. by
        `revoke_keys`, keeps its cause); a success is always recorded."""
        operations = [
            UpdateOne(
                {"_id": _id}
                if update.get("$set", {}).get("status") == DeliveryStatus.DELIVERED
                else {"_id": _id, "status": DeliveryStatus.PENDING},
                update,
            )
            for _id, update in updates
        ]
        # Small chunks: on a database that serialises writes (devstack's FerretDB) the intake of
        # new deliveries gets its turn between them instead of waiting behind a long bulk.
        await bulk_write_in_chunks(self.deliveries, operations, chunk=10)

    async def pending(
        self, subscription_id: str, partitions: Iterable[int] | None, limit: int
    ) -> list[Document]:
        query: Document = {"subscription_id": subscription_id, "status": DeliveryStatus.PENDING}
        if partitions is not None:
            query["partition"] = {"$in": sorted(partitions)}
        cursor = self.deliveries.find(query).sort([("seq", ASCENDING)]).limit(limit)
        return await cursor.to_list()

    async def delivery_log(
        self,
        subscription_id: str,
        *,
        status: DeliveryStatus | None,
        since: datetime | None,
        limit: int,
    ) -> list[Document]:
        query: Document = {"subscription_id": subscription_id}
        if status:
            query["status"] = status
        if since:
            query["created_at"] = {"$gte": since}
        cursor = (
            self.deliveries.find(query, projection={"body": False})
            .sort("created_at", DESCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def redrive(self, subscription_id: str, since: datetime | None) -> int:
        """Failed deliveries back to pending, for a fresh round of attempts."""
        query: Document = {"subscription_id": subscription_id, "status": DeliveryStatus.FAILED}
        if since:
            query["created_at"] = {"$gte": since}
        result = await self.deliveries.update_many(
            query,
            {
                "$set": {
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": datetime.now(UTC),
                    "redriven_at": datetime.now(UTC),
                }
            },
        )
        return result.modified_count

    async def upsert_replayed(self, documents: list[Document]) -> None:
        """Replayed events: new deliveries, or a fresh round for ones already known."""
        operations = []
        for document in documents:
            fresh = {
                k: v for k, v in document.items() if k not in ("_id", "created_at", "replayed_at")
            }
            operations.append(
                UpdateOne(
                    {"_id": document["_id"]},
                    {
                        "$set": {**fresh, "replayed_at": document["replayed_at"]},
                        "$setOnInsert": {"created_at": document["created_at"]},
                    },
                    upsert=True,
                )
            )
        await bulk_write_in_chunks(self.deliveries, operations)

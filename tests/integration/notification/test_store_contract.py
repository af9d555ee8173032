"""The contract of the citizen messages' store (`MessageStore`): the same tests against the
in-memory fake (`adapters.memory`) and the MongoDB store on the real MongoDB-protocol server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notification.citizens.adapters.memory import InMemoryMessageStore
from services.notification.citizens.adapters.store import NotificationStore
from services.notification.citizens.domain.ports import Document, MessageStore
from shared.runtime.mongo import create_mongo_client
from shared.runtime.outbox import merge_updates, outbox_update

# Whole milliseconds: MongoDB keeps no finer time.
NOW = datetime(2026, 11, 29, 8, 30, tzinfo=UTC)
LEASE = timedelta(seconds=60)
CODE = "000.00.21.G12-261129-0001"


@dataclass
class Subject:
    store: MessageStore
    add_inbox_message: Callable[[Document], Awaitable[None]]


@pytest.fixture(params=["memory", "mongodb"])
async def subject(
    request: pytest.FixtureRequest, mongo_url: str, unique: str
) -> AsyncIterator[Subject]:
    if request.param == "memory":
        fake = InMemoryMessageStore()

        async def add_to_fake(message: Document) -> None:
            fake.inbox[message["_id"]] = message

        yield Subject(fake, add_to_fake)
        return
    # The test database of `tests/conftest.py` (`mongo_db`), made here: only this variant
    # needs the server.
    client = create_mongo_client(mongo_url)
    name = f"test_{unique}"
    real = NotificationStore(client[name])
    await real.ensure_indexes()

    async def add_to_mongodb(message: Document) -> None:
        await real.inbox.insert_one(message)

    try:
        yield Subject(real, add_to_mongodb)
    finally:
        await client.drop_database(name)
        await client.close()


def delivery(
    nid: str,
    *,
    event: str = "event-1",
    channel: str = "sms",
    status: str = "created",
    due: datetime = NOW,
    created: datetime = NOW,
    **fields: Any,
) -> Document:
    return {
        "_id": nid,
        "source_event_id": event,
        "channel": channel,
        "dossier_code": CODE,
        "status": status,
        "attempts": 0,
        "next_attempt_at": due,
        "lease_until": None,
        "claim": None,
        "created_at": created,
        "updated_at": created,
        "fallback_pending": False,
        **fields,
    }


async def test_a_recipient_is_upserted_and_read_back(subject: Subject) -> None:
    store = subject.store
    assert await store.recipient(CODE) is None
    await store.save_recipient(CODE, {"phone": "0912345678", "locale": "vi"})
    await store.save_recipient(CODE, {"email": "a@example.vn", "locale": "vi"})
    recipient = await store.recipient(CODE)
    assert recipient is not None
    assert recipient["_id"] == CODE
    assert (recipient["phone"], recipient["email"]) == ("0912345678", "a@example.vn")


async def test_a_new_recipient_is_stored_as_its_upsert_and_a_redelivery_writes_it_again(
    subject: Subject,
) -> None:
    store = subject.store
    submitted = {"phone": "0912345678", "email": None, "channel_order": ["email", "sms"]}
    await store.save_recipient(CODE, submitted, new=True)
    await store.save_recipient("other", submitted)  # the upsert
    first = await store.recipient(CODE)
    assert first == {**(await store.recipient("other") or {}), "_id": CODE}
    # Changed meanwhile, then the submitted event delivered again: written again, as upserted.
    await store.save_recipient(CODE, {"phone": None}, new=False)
    await store.save_recipient(CODE, submitted, new=True)
    assert await store.recipient(CODE) == first


async def test_a_delivery_is_created_once(subject: Subject) -> None:
    store = subject.store
    assert await store.create_delivery(delivery("n-1"))
    # A redelivered event: the same id (derived from the source event and the channel).
    assert not await store.create_delivery(delivery("n-1"))
    assert await store.create_delivery(delivery("n-3", channel="email"))
    found = await store.delivery("n-1")
    assert found is not None and found["status"] == "created"
    assert await store.delivery("unknown") is None


async def test_a_due_delivery_is_claimed_by_one_worker_until_its_lease_expires(
    subject: Subject,
) -> None:
    store = subject.store
    await store.create_delivery(delivery("n-1"))
    await store.create_delivery(delivery("n-2", event="event-2", due=NOW + timedelta(minutes=5)))
    claimed = await store.claim("n-1", NOW, LEASE, "claim-a")
    assert claimed is not None
    assert (claimed["status"], claimed["claim"], claimed["attempts"]) == ("sending", "claim-a", 1)
    assert claimed["lease_until"] == NOW + LEASE
    assert await store.claim("n-1", NOW + timedelta(seconds=30), LEASE, "claim-b") is None
    assert await store.claim("n-2", NOW, LEASE, "claim-b") is None  # not due yet
    assert await store.claim("unknown", NOW, LEASE, "claim-b") is None
    later = NOW + LEASE
    taken_over = await store.claim("n-1", later, LEASE, "claim-b")
    assert taken_over is not None
    assert (taken_over["claim"], taken_over["attempts"]) == ("claim-b", 2)


async def test_due_ids_are_retries_then_expired_leases(subject: Subject) -> None:
    store = subject.store
    await store.create_delivery(delivery("due", event="e1"))
    await store.create_delivery(delivery("later", event="e2", due=NOW + timedelta(hours=1)))
    await store.create_delivery(delivery("held", event="e3"))
    await store.create_delivery(delivery("orphan", event="e4", due=NOW - 3 * LEASE))
    await store.claim("held", NOW, LEASE, "c1")
    await store.claim("orphan", NOW - 2 * LEASE, LEASE, "c2")
    assert await store.due_ids(NOW, limit=10) == ["due", "orphan"]
    assert await store.due_ids(NOW, limit=1) == ["due"]
    assert await store.due_ids(NOW - timedelta(days=1), limit=10) == []


async def test_update_where_is_a_compare_and_set(subject: Subject) -> None:
    store = subject.store
    await store.create_delivery(delivery("n-1"))
    await store.claim("n-1", NOW, LEASE, "mine")
    owned = {"_id": "n-1", "status": "sending", "claim": "mine"}
    assert not await store.update_where({**owned, "claim": "theirs"}, {"$set": {"status": "sent"}})
    assert await store.update_where(
        owned, {"$set": {"status": "sent", "lease_until": None}, "$unset": {"claim": ""}}
    )
    assert not await store.update_where(owned, {"$set": {"status": "delivered"}})
    awaiting = {"_id": "n-1", "status": {"$in": ["sending", "sent"]}}
    assert await store.update_where(
        awaiting,
        merge_updates({"$set": {"status": "delivered"}}, outbox_update([])),
    )
    found = await store.delivery("n-1")
    assert found is not None
    assert found["status"] == "delivered" and "claim" not in found
    assert found["lease_until"] is None and found["outbox"] == [] and found["outbox_pending"]
    assert await store.update_where({"_id": "n-1", "lease_until": None}, {"$inc": {"attempts": 2}})
    found = await store.delivery("n-1")
    assert found is not None and found["attempts"] == 3


async def test_update_and_read_returns_the_delivery_as_updated_or_none(subject: Subject) -> None:
    store = subject.store
    await store.create_delivery(delivery("n-1"))
    await store.claim("n-1", NOW, LEASE, "mine")
    owned = {"_id": "n-1", "status": "sending", "claim": "mine"}
    update = {"$set": {"status": "sent"}, "$inc": {"attempts": 1}}
    assert await store.update_and_read({**owned, "claim": "theirs"}, update) is None
    written = await store.update_and_read(owned, update)
    assert written is not None and written["status"] == "sent" and written["attempts"] == 2
    assert written == await store.delivery("n-1")
    assert await store.update_and_read(owned, update) is None  # no longer "sending"


async def test_pending_fallbacks_wait_for_their_grace(subject: Subject) -> None:
    store = subject.store
    await store.create_delivery(delivery("old", event="e1", fallback_pending=True))
    recent = NOW + timedelta(minutes=1)
    await store.create_delivery(delivery("new", event="e2", fallback_pending=True, created=recent))
    await store.create_delivery(delivery("done", event="e3"))
    assert [d["_id"] for d in await store.pending_fallbacks(NOW)] == ["old"]
    found = await store.pending_fallbacks(recent)
    assert sorted(d["_id"] for d in found) == ["new", "old"]
    assert len(await store.pending_fallbacks(recent, limit=1)) == 1


async def test_a_dossiers_deliveries_and_inbox_come_oldest_first(subject: Subject) -> None:
    store = subject.store
    for n, minutes in enumerate((5, 1, 3)):
        created = NOW + timedelta(minutes=minutes)
        await store.create_delivery(delivery(f"n-{n}", event=f"e{n}", created=created))
        await subject.add_inbox_message(
            {
                "_id": f"m-{n}",
                "dossier_code": CODE,
                "title": "t",
                "body": "b",
                "created_at": created,
            }
        )
    await store.create_delivery({**delivery("other", event="e9"), "dossier_code": "other"})
    assert [d["_id"] for d in await store.deliveries_for(CODE)] == ["n-1", "n-2", "n-0"]
    assert [m["_id"] for m in await store.inbox_for(CODE)] == ["m-1", "m-2", "m-0"]
    assert await store.deliveries_for("nobody") == [] and await store.inbox_for("nobody") == []


async def test_a_new_recipient_costs_one_insert_that_simultaneous_ones_share(watched_db) -> None:
    db, commands = watched_db
    store = NotificationStore(db)
    commands.sent.clear()

    await asyncio.gather(
        *(store.save_recipient(f"{CODE}-{n}", {"phone": "0912345678"}, new=True) for n in range(5))
    )
    assert commands.sent == [("insert", "recipients")]

    commands.sent.clear()
    await store.save_recipient(f"{CODE}-1", {"phone": "0987654321"}, new=True)  # redelivered
    assert commands.sent == [("insert", "recipients"), ("update", "recipients")]
    assert await store.recipient(f"{CODE}-1") == {"_id": f"{CODE}-1", "phone": "0987654321"}

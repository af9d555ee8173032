"""The platform relies on single-document atomicity (outbox, applied event ids, counters).

FerretDB alone (on PostgreSQL as on SQLite) loses concurrent updates of one document; devstack's
FerretDB serialises the writes to each collection (devstack/ferretdb/patches/0004) so that it
behaves as MongoDB does. These tests guard that property, and that writes to other collections
and reads do not wait behind a long write.
"""

from __future__ import annotations

import asyncio

from pymongo import UpdateOne, WriteConcern

from shared.runtime.mongo import bulk_write_in_chunks


async def test_concurrent_increments_of_one_document_are_all_applied(mongo_db) -> None:
    counters = mongo_db["counters"]
    await counters.insert_one({"_id": "daily", "value": 0})
    await asyncio.gather(
        *(counters.update_one({"_id": "daily"}, {"$inc": {"value": 1}}) for _ in range(100))
    )
    assert (await counters.find_one({"_id": "daily"}))["value"] == 100


async def test_unacknowledged_writes_are_applied_before_the_next_write_runs(mongo_db) -> None:
    """A w:0 write gets no answer; it holds the collection's lock until it is applied, so an
    acknowledged write behind it sees its effect."""
    counters = mongo_db["counters"]
    await counters.insert_one({"_id": "daily", "value": 0})
    fire_and_forget = counters.with_options(write_concern=WriteConcern(w=0))
    for _ in range(50):
        await fire_and_forget.update_one({"_id": "daily"}, {"$inc": {"value": 1}})
    after = await counters.find_one_and_update({"_id": "daily"}, {"$inc": {"value": 1}})
    assert after is not None and after["value"] == 50


async def test_concurrent_updates_of_different_fields_are_all_kept(mongo_db) -> None:
    dossiers = mongo_db["dossiers"]
    await dossiers.insert_one({"_id": "D"})
    await asyncio.gather(
        *(dossiers.update_one({"_id": "D"}, {"$set": {f"field_{n}": n}}) for n in range(50))
    )
    document = await dossiers.find_one({"_id": "D"})
    assert {f"field_{n}" for n in range(50)} <= set(document)


async def test_a_large_bulk_update_completes_in_chunks(mongo_db) -> None:
    """FerretDB 1.24 hangs on an update command of more than ~100 statements (and every write
    behind it): bulk updates are chunked. A regression here hangs, so it is bounded."""
    documents = mongo_db["bulk"]
    await documents.insert_many([{"_id": n, "v": 0} for n in range(300)])
    operations = [UpdateOne({"_id": n}, {"$set": {"v": n}}) for n in range(300)]
    async with asyncio.timeout(60):
        await bulk_write_in_chunks(documents, operations)
    assert [d["v"] async for d in documents.find().sort("_id")] == list(range(300))


async def test_a_long_write_holds_up_only_the_writes_to_its_own_collection(mongo_db) -> None:
    slow, other = mongo_db["slow"], mongo_db["other"]
    await slow.insert_many([{"_id": n, "v": 0} for n in range(6000)])
    # FerretDB updates the matched documents one by one (about a second and a half here)
    long_write = asyncio.ensure_future(slow.update_many({}, {"$inc": {"v": 1}}))
    while await slow.find_one({"v": 1}) is None:  # until it has begun (reads pass it)
        pass
    await other.insert_one({"_id": "meanwhile"})  # another collection: not held up
    await slow.find_one({"_id": 0})  # a read of the same collection: not held up
    assert not long_write.done()
    behind = asyncio.ensure_future(slow.update_one({"_id": 0}, {"$set": {"after": True}}))
    await long_write
    await behind
    assert await slow.count_documents({"v": 1}) == 6000
    assert await other.count_documents({}) == 1

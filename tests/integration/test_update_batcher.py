"""`UpdateBatcher`: concurrent updates to one collection share bulk writes, and each caller gets
its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from shared.runtime.mongo import BULK_CHUNK, UpdateBatcher


async def test_concurrent_upserts_share_bulk_writes_of_at_most_a_chunk(watched_db) -> None:
    db, commands = watched_db
    counters = UpdateBatcher(db["counters"])
    commands.sent.clear()

    await asyncio.gather(
        *(
            counters.update({"_id": f"k{n % 5}"}, {"$inc": {"n": 1}}, upsert=True)
            for n in range(BULK_CHUNK + 5)
        )
    )

    assert commands.sent == [("update", "counters"), ("update", "counters")]
    rows = {row["_id"]: row["n"] async for row in db["counters"].find({})}
    assert rows == {f"k{k}": 6 for k in range(5)}


async def test_an_upsert_asked_for_during_a_write_goes_in_the_next_one(watched_db) -> None:
    db, commands = watched_db
    counters = UpdateBatcher(db["counters"])
    commands.sent.clear()

    first = asyncio.create_task(counters.update({"_id": "a"}, {"$set": {"v": 1}}, upsert=True))
    await asyncio.sleep(0.001)  # the first write is on its way
    await asyncio.gather(
        counters.update({"_id": "a"}, {"$set": {"v": 2}}, upsert=True),
        counters.update({"_id": "b"}, {"$set": {"v": 3}}, upsert=True),
    )
    await first

    assert commands.sent == [("update", "counters"), ("update", "counters")]
    assert await db["counters"].find_one({"_id": "a"}) == {"_id": "a", "v": 2}  # in order


async def test_a_refused_upsert_fails_its_caller_and_nothing_is_written_twice(watched_db) -> None:
    db, _ = watched_db
    await db["counters"].insert_one({"_id": "text", "n": "not a number"})
    counters = UpdateBatcher(db["counters"])

    results = await asyncio.gather(
        counters.update({"_id": "one"}, {"$inc": {"n": 1}}, upsert=True),
        counters.update({"_id": "text"}, {"$inc": {"n": 1}}, upsert=True),
        counters.update({"_id": "two"}, {"$inc": {"n": 2}}, upsert=True),
        return_exceptions=True,
    )

    assert isinstance(results[1], Exception)
    rows = {row["_id"]: row["n"] async for row in db["counters"].find({})}
    assert rows["text"] == "not a number"
    # MongoDB names the refused operation and applies the others. FerretDB stops at it and
    # answers unreadably, so every caller gets that error and handles its event again (the
    # platform's handlers are idempotent). Either way nothing is applied twice, and a caller
    # told its upsert was done finds it done.
    for key, n, result in (("one", 1, results[0]), ("two", 2, results[2])):
        assert rows.get(key) in (None, n)
        assert result is not None or rows.get(key) == n


async def test_an_outage_fails_every_caller_of_the_write(watched_db) -> None:
    db, _ = watched_db
    counters = UpdateBatcher(db["counters"])

    async def unreachable(*_: object, **__: object) -> None:
        raise ConnectionError("database unreachable")

    counters.collection.bulk_write = unreachable  # type: ignore[method-assign]
    results = await asyncio.gather(
        counters.update({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True),
        counters.update({"_id": "b"}, {"$inc": {"n": 1}}, upsert=True),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    with pytest.raises(ConnectionError):
        await counters.update({"_id": "c"}, {"$inc": {"n": 1}}, upsert=True)  # the next one tries

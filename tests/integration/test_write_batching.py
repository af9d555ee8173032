"""`WriteBatcher`, `CounterAdder` and `NumberDrawer`: concurrent writes to one collection share
round trips, and each caller gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import DuplicateKeyError, WriteError

from shared.runtime.mongo import BULK_CHUNK
from shared.runtime.write_batching import CounterAdder, NumberDrawer, WriteBatcher


async def test_concurrent_upserts_share_bulk_writes_of_at_most_a_chunk(watched_db) -> None:
    db, commands = watched_db
    counters = WriteBatcher(db["counters"])
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
    counters = WriteBatcher(db["counters"])
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
    counters = WriteBatcher(db["counters"])

    results = await asyncio.gather(
        counters.update({"_id": "one"}, {"$inc": {"n": 1}}, upsert=True),
        counters.update({"_id": "text"}, {"$inc": {"n": 1}}, upsert=True),
        counters.update({"_id": "two"}, {"$inc": {"n": 2}}, upsert=True),
        return_exceptions=True,
    )

    assert isinstance(results[1], WriteError)
    assert results[0] is None and results[2] is None
    rows = {row["_id"]: row["n"] async for row in db["counters"].find({})}
    # The refused operation is named and the others are applied (on FerretDB with devstack's
    # patch 0007, as on MongoDB).
    assert rows == {"text": "not a number", "one": 1, "two": 2}


async def test_compare_and_set_updates_share_one_write_and_each_learns_if_it_matched(
    watched_db,
) -> None:
    db, commands = watched_db
    await db["dossiers"].insert_many([{"_id": key, "v": 1} for key in ("a", "b", "c")])
    dossiers = WriteBatcher(db["dossiers"])
    commands.sent.clear()

    def bump(key: str, version: int):
        return dossiers.update_if({"_id": key, "v": version}, {"$inc": {"v": 1}})

    results = await asyncio.gather(bump("a", 1), bump("b", 7), bump("gone", 1), bump("c", 1))

    assert results == [True, False, False, True]
    # One bulk write, and one delete of the stub the upsert for "gone" inserted.
    assert commands.sent == [("update", "dossiers"), ("delete", "dossiers")]
    rows = {row["_id"]: row async for row in db["dossiers"].find({})}
    assert rows == {"a": {"_id": "a", "v": 2}, "b": {"_id": "b", "v": 1}, "c": {"_id": "c", "v": 2}}


async def test_a_compare_and_set_update_needs_an_id(watched_db) -> None:
    db, _ = watched_db
    with pytest.raises(ValueError, match="_id"):
        await WriteBatcher(db["dossiers"]).update_if({"v": 1}, {"$inc": {"v": 1}})


async def test_an_outage_fails_every_caller_of_the_write(watched_db) -> None:
    db, _ = watched_db
    counters = WriteBatcher(db["counters"])

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


async def test_concurrent_inserts_share_one_insert_and_a_taken_key_fails_only_its_caller(
    watched_db,
) -> None:
    db, commands = watched_db
    await db["deliveries"].insert_one({"_id": "taken", "by": "the first delivery"})
    deliveries = WriteBatcher(db["deliveries"])
    commands.sent.clear()

    results = await asyncio.gather(
        deliveries.insert({"_id": "a"}),
        deliveries.insert({"_id": "taken", "by": "a redelivery"}),
        deliveries.insert({"_id": "b"}, {"_id": "c"}),
        return_exceptions=True,
    )

    assert commands.sent == [("insert", "deliveries")]
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], DuplicateKeyError)
    rows = {row["_id"]: row.get("by") async for row in db["deliveries"].find({})}
    assert rows == {"a": None, "b": None, "c": None, "taken": "the first delivery"}


async def test_one_callers_documents_go_in_one_write_even_past_a_chunk(watched_db) -> None:
    db, commands = watched_db
    chunks = WriteBatcher(db["chunks"])
    commands.sent.clear()

    many = [{"_id": f"x{n}", "n": n} for n in range(BULK_CHUNK + 3)]
    await asyncio.gather(chunks.insert(*many), chunks.insert({"_id": "y"}))

    # The second caller does not fit beside the first: it goes in the next write, whole.
    assert commands.sent == [("insert", "chunks"), ("insert", "chunks")]
    assert await db["chunks"].count_documents({}) == BULK_CHUNK + 4


async def test_an_insert_then_an_update_of_the_same_document_apply_in_that_order(
    watched_db,
) -> None:
    db, _ = watched_db
    keys = WriteBatcher(db["keys"])

    await keys.insert({"_id": "k", "state": "in-progress"})
    await keys.update({"_id": "k"}, {"$set": {"state": "completed"}}, upsert=False)

    assert await db["keys"].find_one({"_id": "k"}) == {"_id": "k", "state": "completed"}


async def test_amounts_added_to_one_counter_meanwhile_are_one_statement_of_the_next_write(
    watched_db,
) -> None:
    db, commands = watched_db
    counters = CounterAdder(db["counters"])
    commands.sent.clear()

    first = asyncio.create_task(counters.add("q1|a", {"received": 1}, {"quarter": "q1"}))
    await asyncio.sleep(0.001)  # the first write is on its way
    await asyncio.gather(
        *(counters.add("q1|a", {"received": 1, "online": 1}, {"quarter": "q1"}) for _ in range(7)),
        counters.add("q1|b", {"received": 2}, {"quarter": "q1"}),
        counters.add("q1|a", {"online": -1}),
    )
    await first

    assert commands.sent == [("update", "counters"), ("update", "counters")]
    # The second write has one statement per counter, whatever the number of callers.
    assert [len(s or []) for s in commands.statements] == [1, 2]
    rows = {row["_id"]: row async for row in db["counters"].find({})}
    assert rows == {
        "q1|a": {"_id": "q1|a", "quarter": "q1", "received": 8, "online": 6},
        "q1|b": {"_id": "q1|b", "quarter": "q1", "received": 2},
    }


async def test_a_refused_sum_fails_the_callers_of_that_counter_only(watched_db) -> None:
    db, _ = watched_db
    await db["counters"].insert_one({"_id": "text", "n": "not a number"})
    counters = CounterAdder(db["counters"])

    results = await asyncio.gather(
        counters.add("one", {"n": 1}),
        counters.add("text", {"n": 1}),
        counters.add("text", {"n": 2}),
        counters.add("two", {"n": 2}),
        return_exceptions=True,
    )

    assert [type(r) for r in results] == [type(None), WriteError, WriteError, type(None)]
    rows = {row["_id"]: row["n"] async for row in db["counters"].find({})}
    assert rows == {"text": "not a number", "one": 1, "two": 2}
    await counters.add("one", {"n": 1})  # the next write goes on
    assert (await db["counters"].find_one({"_id": "one"}))["n"] == 2


async def test_a_cancelled_caller_leaves_the_others_their_sum(watched_db) -> None:
    db, _ = watched_db
    counters = CounterAdder(db["counters"])

    leaving = asyncio.create_task(counters.add("k", {"n": 1}))
    staying = asyncio.create_task(counters.add("k", {"n": 1}))
    await asyncio.sleep(0)
    leaving.cancel()
    await staying

    # An amount is added when asked for: the leaving caller cancels neither its own nor the other.
    assert (await db["counters"].find_one({"_id": "k"}))["n"] == 2


async def test_simultaneous_draws_share_one_round_trip_and_get_consecutive_numbers(
    watched_db,
) -> None:
    db, commands = watched_db
    await db["sequences"].insert_one({"_id": "day", "value": 41})
    numbers = NumberDrawer(db["sequences"])
    commands.sent.clear()

    drawn = await asyncio.gather(*(numbers.draw("day") for _ in range(10)))

    assert drawn == list(range(42, 52))  # in the order asked
    assert commands.sent == [("findAndModify", "sequences")]
    assert await db["sequences"].find_one({"_id": "day"}) == {"_id": "day", "value": 51}


async def test_a_draw_during_a_round_trip_goes_in_the_next_and_counters_stay_apart(
    watched_db,
) -> None:
    db, commands = watched_db
    numbers = NumberDrawer(db["sequences"])
    commands.sent.clear()

    first = asyncio.create_task(numbers.draw("day"))
    await asyncio.sleep(0.001)  # the first draw is on its way
    later = await asyncio.gather(numbers.draw("day"), numbers.draw("day"), numbers.draw("other"))

    assert await first == 1
    assert later == [2, 3, 1]
    assert sorted(commands.sent) == [("findAndModify", "sequences")] * 3


async def test_a_failed_draw_fails_its_callers_and_the_next_draw_tries_again(watched_db) -> None:
    db, _ = watched_db
    numbers = NumberDrawer(db["sequences"])
    reach = numbers.collection.find_one_and_update

    async def unreachable(*_: object, **__: object) -> None:
        raise ConnectionError("database unreachable")

    numbers.collection.find_one_and_update = unreachable  # type: ignore[method-assign]
    failed = await asyncio.gather(numbers.draw("day"), numbers.draw("day"), return_exceptions=True)
    assert [type(r) for r in failed] == [ConnectionError, ConnectionError]

    numbers.collection.find_one_and_update = reach  # type: ignore[method-assign]
    assert await numbers.draw("day") == 1  # nothing was drawn by the failed round trip

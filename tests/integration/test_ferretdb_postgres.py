"""FerretDB on PostgreSQL serves the services' equality filters from an index: devstack's event
trigger (devstack/postgres/gin_mirror.sql) gives each FerretDB index a GIN twin that serves the
`_jsonb->'field' @> value` conditions FerretDB pushes down. Our patch to FerretDB
(devstack/ferretdb/patches/) also pushes a sort on top-level fields and the limit down when the
filter is pushed down exactly; the property test below holds it to the unlimited query's result.

DVC_TEST_FERRETDB_POSTGRES_DB names the PostgreSQL database of the FerretDB under test when it
is not the test profile's (a FerretDB started by hand, see DVC_TEST_MONGO_URL)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import Binary, Int64, ObjectId, Regex, Timestamp
from pymongo import ASCENDING, DESCENDING

from devstack import postgres_server
from devstack.config import load_config

CONFIG = load_config("test")
pytestmark = pytest.mark.skipif(
    CONFIG.mongo_backend != "postgresql", reason="the test profile runs FerretDB on SQLite"
)


DATABASE = os.environ.get("DVC_TEST_FERRETDB_POSTGRES_DB", postgres_server.DATABASE)


def sql(statement: str) -> str:
    result = postgres_server.psql(CONFIG, statement, database=DATABASE)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def table_of(database: str, collection: str) -> str:
    """FerretDB's table for a collection: `<schema>.<collection>_<hash>`."""
    table = sql(
        f"SELECT tablename FROM pg_tables WHERE schemaname = '{database}' "
        f"AND tablename LIKE '{collection}\\_%' AND tablename NOT LIKE '\\_ferretdb%'"
    )
    assert table, f"no table for {database}.{collection}"
    return f'"{database}"."{table}"'


def plan(table: str, condition: str) -> str:
    sql(f"ANALYZE {table}")
    return json.dumps(
        json.loads(sql(f"EXPLAIN (FORMAT JSON) SELECT _jsonb FROM {table} WHERE {condition}"))
    )


async def test_lookups_by_id_and_by_an_indexed_field_use_an_index(mongo_db) -> None:
    dossiers = mongo_db["dossiers"]
    await dossiers.create_index([("state", ASCENDING), ("due_at", ASCENDING)])
    await dossiers.insert_many(
        [{"_id": f"D{n:05d}", "state": "pending" if n % 100 == 0 else "done"} for n in range(5000)]
    )
    explained = await mongo_db.command("explain", {"find": "dossiers", "filter": {"_id": "D00042"}})
    assert explained["filterPushdown"] is True

    table = table_of(mongo_db.name, "dossiers")
    by_id = plan(table, """_jsonb->'_id' @> '"D00042"'""")
    by_state = plan(table, """_jsonb->'state' @> '"pending"'""")
    for found in (by_id, by_state):
        assert "Index Scan" in found and "Seq Scan" not in found, found


async def test_an_unindexed_field_is_still_a_scan(mongo_db) -> None:
    """The check above can fail: a field no index covers gets no GIN twin."""
    notes = mongo_db["notes"]
    await notes.insert_many([{"_id": n, "colour": "red" if n % 2 else "blue"} for n in range(2000)])
    found = plan(table_of(mongo_db.name, "notes"), """_jsonb->'colour' @> '"red"'""")
    assert "Seq Scan" in found


def table_scans(table: str) -> tuple[int, int]:
    """(sequential, index) scans of the table so far, as PostgreSQL's statistics count them."""
    name = table.split(".")[1].strip('"')
    schema = table.split(".")[0].strip('"')
    row = sql(
        "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables "
        f"WHERE schemaname = '{schema}' AND relname = '{name}'"
    )
    seq, idx = row.split("|")
    return int(seq), int(idx)


async def test_repeated_lookups_stay_index_scans_after_the_collection_grows(mongo_db) -> None:
    """FerretDB prepares its statements with the field name as a parameter (`_jsonb->$1 @> $2`).
    A generic plan, adopted while the collection was small, could never use the expression
    indexes and would scan the grown collection on every lookup (devstack runs PostgreSQL with
    `plan_cache_mode=force_custom_plan`)."""
    cases = mongo_db["cases"]
    await cases.create_index([("unit", ASCENDING)])
    await cases.insert_one({"_id": "C0", "unit": "G12"})
    for _ in range(30):  # while it is small: where PostgreSQL would settle on a generic plan
        assert await cases.find_one({"_id": "C0"}) is not None
        assert await cases.find_one({"unit": "G12"}) is not None
    await cases.insert_many([{"_id": f"C{n}", "unit": f"U{n}"} for n in range(1, 5000)])
    table = table_of(mongo_db.name, "cases")
    sql(f"ANALYZE {table}")
    seq_before, idx_before = table_scans(table)

    for n in range(20):
        assert await cases.find_one({"_id": f"C{n * 100}"}) is not None
        assert await cases.find_one({"unit": f"U{n * 100 + 1}"}) is not None

    # FerretDB's backends report their counts within seconds (at most ten when idle).
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        seq, idx = table_scans(table)
        if (seq - seq_before) + (idx - idx_before) >= 40:
            break
        assert asyncio.get_running_loop().time() < deadline, (seq, idx, seq_before, idx_before)
        await asyncio.sleep(0.5)
    assert seq - seq_before == 0, f"{seq - seq_before} of 40 lookups scanned the whole table"


# Values of every kind the sort and the filters meet: the patch orders missing, null, numbers,
# strings, objectIds, bools and dates in PostgreSQL and leaves the rest (and numbers beyond
# 2^53) to FerretDB's own sort; equalities must not confuse an objectId with its hex string, a
# date with its milliseconds, or a value with an array holding it.
HEX = "5f0000000000000000000001"
WHEN = datetime(2026, 3, 1, tzinfo=UTC)
MIXED: list[Any] = [
    None,
    0,
    1,
    -7,
    Int64(1),
    Int64(2**60),
    -(2**60),
    1.0,
    2.5,
    -0.5,
    1e300,
    "",
    "A",
    "a",
    "Z",
    "ab",
    "é",
    "Ă",
    "日本",
    HEX,
    "1000",
    ObjectId(HEX),
    ObjectId(),
    True,
    False,
    WHEN,
    WHEN + timedelta(milliseconds=1),
    datetime(1969, 12, 31, tzinfo=UTC),
    [],
    [3, "a"],
    ["x"],
    [HEX],
    {"a": 1},
    {},
    Binary(b"\x01\x02"),
    Regex("^a"),
    Timestamp(1, 1),
]
MISSING = object()
GROUPS: list[Any] = ["x", "y", 1, 1.0, HEX, ObjectId(HEX), 1000, WHEN, ["x", "z"], None, MISSING]
RANGE_BOUNDS: list[Any] = [0, 1.5, -(2**40), "", "a", "é", WHEN, ObjectId(HEX), True, None]


def _document(n: int, rng: random.Random) -> dict[str, Any]:
    document: dict[str, Any] = {"_id": n}
    for field, choices in (("a", MIXED), ("b", MIXED), ("g", GROUPS), ("h", [True, False, 2])):
        value = rng.choice([*choices, MISSING])
        if value is not MISSING:
            document[field] = value
    return document


def _random_find(rng: random.Random) -> tuple[dict[str, Any], list[tuple[str, int]], int]:
    query: dict[str, Any] = {}
    if rng.random() < 0.7:
        group = rng.choice([g for g in GROUPS if g is not MISSING and g is not None])
        query["g"] = {"$eq": group} if rng.random() < 0.2 else group
    if rng.random() < 0.3:
        query["h"] = rng.choice([True, False, 2])
    if rng.random() < 0.3:
        field = rng.choice(["a", "b"])
        query[field] = {rng.choice(["$gt", "$gte", "$lt", "$lte"]): rng.choice(RANGE_BOUNDS)}
    keys = rng.sample(["a", "b"], rng.choice([0, 1, 1, 2]))
    sort = [(key, rng.choice([ASCENDING, DESCENDING])) for key in keys]
    sort.append(("_id", rng.choice([ASCENDING, DESCENDING])))  # a total order: one right answer
    return query, sort, rng.randint(1, 25)


async def test_pushed_down_sort_and_limit_return_what_the_whole_query_returns(mongo_db) -> None:
    """Property: with the limit (pushed down) and without (nothing pushed but the filter), the
    same query gives the same documents in the same order, on fields of mixed types."""
    rng = random.Random(4094)
    mixed = mongo_db["mixed"]
    await mixed.insert_many([_document(n, rng) for n in range(400)])

    for _ in range(200):
        query, sort, limit = _random_find(rng)
        limited = [d["_id"] async for d in mixed.find(query).sort(sort).limit(limit)]
        whole = [d["_id"] async for d in mixed.find(query).sort(sort)]
        assert limited == whole[:limit], (query, sort, limit)
        # a limit without a sort: any `limit` of the matching documents
        unsorted = [d["_id"] async for d in mixed.find(query).limit(limit)]
        assert len(unsorted) == min(limit, len(whole)) and set(unsorted) <= set(whole), query


async def test_the_worklist_query_has_its_sort_and_limit_pushed_down(mongo_db) -> None:
    cases = mongo_db["cases"]
    await cases.create_index(
        [("unit_code", 1), ("active", 1), ("online_rank", 1), ("due_sort", 1), ("_id", 1)]
    )
    await cases.insert_many(
        [
            {
                "_id": f"C{n:04d}",
                "unit_code": "U1",
                "active": True,
                "online_rank": n % 2,
                "due_sort": WHEN + timedelta(hours=n % 50),
            }
            for n in range(300)
        ]
    )
    query = {"unit_code": "U1", "active": True, "online_rank": 0}
    find = {"find": "cases", "sort": {"due_sort": 1, "_id": 1}, "limit": 26}
    explained = await mongo_db.command("explain", {**find, "filter": query})
    assert explained["filterPushdown"] and explained["sortPushdown"], explained
    assert explained["limitPushdown"], explained
    # the next page's cursor, as two range queries: still exact, still pushed down
    after = {**query, "due_sort": WHEN, "_id": {"$gt": "C0100"}}
    explained = await mongo_db.command("explain", {**find, "filter": after})
    assert explained["sortPushdown"] and explained["limitPushdown"], explained
    # an $or is not pushed down: FerretDB must read every candidate, and says so
    either = {**query, "$or": [{"due_sort": {"$gt": WHEN}}, {"_id": {"$gt": "C0100"}}]}
    explained = await mongo_db.command("explain", {**find, "filter": either})
    assert not explained["limitPushdown"], explained
    page = [d["_id"] async for d in cases.find(query).sort([("due_sort", 1), ("_id", 1)]).limit(3)]
    assert page == ["C0000", "C0050", "C0100"]

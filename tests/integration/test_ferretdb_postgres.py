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
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import DuplicateKeyError

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
    by_state = plan(table, """_jsonb->'state' @> '"pending"'""")
    assert "Index Scan" in by_state and "Seq Scan" not in by_state, by_state


async def test_a_lookup_by_id_uses_the_unique_btree_and_no_gin_twin(mongo_db) -> None:
    """FerretDB's patch 0005 looks an `_id` up with `=`, which the unique btree FerretDB makes
    serves (the plan here is PostgreSQL's for the statement FerretDB sends), so `_id` needs no
    GIN twin to maintain on every write; `$in` on `_id` is served the same way."""
    cases = mongo_db["cases"]
    await cases.insert_many([{"_id": f"C{n:05d}", "n": n} for n in range(3000)])
    for query in ({"_id": "C00042"}, {"_id": {"$in": ["C00001", "C00002"]}}):
        explained = await mongo_db.command("explain", {"find": "cases", "filter": query})
        found = json.dumps(explained["queryPlanner"])
        assert "Index Scan" in found and "Seq Scan" not in found, found
        assert "_id__" in found and "_gin" not in found, found
    assert await cases.find_one({"_id": "C00042"}) == {"_id": "C00042", "n": 42}
    assert await cases.count_documents({"_id": {"$in": ["C00001", "C00002", "X"]}}) == 2

    table = table_of(mongo_db.name, "cases")
    schema, name = (part.strip('"') for part in table.split("."))
    twins = sql(
        f"SELECT indexname FROM pg_indexes WHERE schemaname = '{schema}' "
        f"AND tablename = '{name}' AND indexdef LIKE '%USING gin%'"
    )
    assert twins == ""


async def test_an_unindexed_field_is_still_a_scan(mongo_db) -> None:
    """The check above can fail: a field no index covers gets no GIN twin."""
    notes = mongo_db["notes"]
    await notes.insert_many([{"_id": n, "colour": "red" if n % 2 else "blue"} for n in range(2000)])
    found = plan(table_of(mongo_db.name, "notes"), """_jsonb->'colour' @> '"red"'""")
    assert "Seq Scan" in found


async def test_a_lookup_prepared_on_a_small_table_uses_the_index_once_it_grew(
    mongo_db, tmp_path
) -> None:
    """FerretDB prepares its statements with the field name as a parameter (`_jsonb->$1 @> $2`,
    pgx caches them per connection), and our patch adds the limit (`LIMIT $3`: a `find_one`).
    With PostgreSQL's default plan cache mode, five runs on a small table settle on a generic
    plan: a sequential scan (a parameter cannot match the expression indexes), kept after the
    table grew until its statistics are refreshed. At 100,000 stored dossiers lookups by `_id`
    scanned the table (since patch 0005 `_id` is looked up with `=`; other fields still so).
    devstack runs PostgreSQL with `plan_cache_mode=force_custom_plan`. The statement is prepared
    here, in one session, on the collection's own table (with the default mode this test sees
    the `Seq Scan`)."""
    cases = mongo_db["cases"]
    await cases.create_index([("unit", ASCENDING)])
    await cases.insert_one({"_id": "C0", "unit": "U0"})
    table = table_of(mongo_db.name, "cases")
    script = tmp_path / "prepared.sql"
    script.write_text(
        # The statement our patched FerretDB sends for `find_one({"unit": ...})`.
        "PREPARE lookup(text, jsonb, int) AS WITH _q AS MATERIALIZED (SELECT _jsonb, "
        f"_jsonb->'$s'->'p' AS _s FROM (SELECT _jsonb FROM {table} WHERE _jsonb->$1 @> $2) AS _f), "
        "_r AS (SELECT _jsonb, _s, (COALESCE((_s->'unit'->>'t') IN ('string'), false)) AS _c "
        "FROM _q) (SELECT _jsonb FROM _r WHERE _c LIMIT $3) "
        "UNION ALL (SELECT _jsonb FROM _r WHERE NOT _c);\n"
        + "EXECUTE lookup('unit', '\"U0\"', 1);\n"
        * 6
        # Grown since, its statistics not yet refreshed (autovacuum sleeps for minutes).
        + f"INSERT INTO {table} (_jsonb) SELECT jsonb_build_object('_id', 'C' || n, 'unit', "
        "'U' || n) FROM generate_series(1, 5000) AS n;\n"
        "EXPLAIN (FORMAT JSON) EXECUTE lookup('unit', '\"U42\"', 1);\n"
    )
    result = postgres_server.psql(CONFIG, None, database=DATABASE, script=script)
    assert result.returncode == 0, result.stderr
    found = result.stdout
    assert "Index Scan" in found and "Seq Scan" not in found, found


async def test_writes_on_id_scan_no_table_even_one_planned_while_tiny(mongo_db) -> None:
    """FerretDB's patch 0008 runs the statements that find their row by `_id` (every `UPDATE`,
    and the `SELECT` of a filter that starts with `_id`) on sessions that plan each statement
    once and never choose a sequential scan where an index serves. On a one-page table with fresh
    statistics a sequential scan is the cheaper plan; without the patch every run was planned
    again (so it was one here), and a plan made once would have stayed one after the table grew
    (autovacuum refreshes statistics only minutes later). The table's scan counters tell what
    FerretDB's own statements did."""
    deliveries = mongo_db["deliveries"]
    await deliveries.insert_one({"_id": "d0", "status": "created", "n": 0})
    table = table_of(mongo_db.name, "deliveries")
    sql(f"VACUUM ANALYZE {table}")

    async def write_on_id(key: str) -> None:
        await deliveries.update_one({"_id": key}, {"$inc": {"n": 1}})
        await deliveries.find_one_and_update({"_id": key, "status": "created"}, {"$inc": {"n": 1}})

    for _ in range(8):  # past the five custom plans of PostgreSQL's default plan cache mode
        await write_on_id("d0")
    await deliveries.insert_many(
        [{"_id": f"d{n}", "status": "created", "n": 0} for n in range(1, 5001)]
    )
    for n in range(8):
        await write_on_id(f"d{n * 500}")

    # 32 writes, each a SELECT and an UPDATE that find their row by `_id` (a session's counts
    # reach PostgreSQL's statistics within seconds).
    deadline = asyncio.get_running_loop().time() + 30
    while (scans := _scans(table))[1] < 64:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    sequential, by_index = scans
    assert by_index >= 64, scans
    assert sequential <= 1, scans  # the build of the unique `_id` index, when the table was made
    written = await deliveries.find_one({"_id": "d500"})
    assert written == {"_id": "d500", "status": "created", "n": 2}


def _scans(table: str) -> tuple[int, int]:
    """A table's sequential and index scans so far (PostgreSQL's statistics)."""
    seq, idx = sql(
        f"SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables "
        f"WHERE relid = '{table}'::regclass"
    ).split("|")
    return int(seq), int(idx)


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


# Our second patch (0002-group-count-pushdown) answers [$match, $group {_id: <fields>, n: {$sum:
# 1}}] with one grouped count in PostgreSQL when the $match is exact. The same pipeline with its
# filter wrapped in a top-level $and (never pushed down exactly) runs on FerretDB's own Go
# $group: both must give the same documents, BSON types included.

GROUP_VALUES: list[Any] = [
    None,
    0,
    1,
    Int64(1),
    1.0,
    Int64(2**40),
    2.5,
    -3,
    "",
    "1",
    "x",
    "X",
    "é",
    HEX,
    ObjectId(HEX),
    True,
    False,
    WHEN,
    datetime(1969, 12, 31, tzinfo=UTC),
    [],
    [1, "x"],
    {"a": 1},
    {"a": 1.0},
    {},
    Binary(b"\x01"),
    Timestamp(1, 1),
]
GROUP_KEYS: list[Any] = [
    1,
    "x",
    None,
    True,
    WHEN,
    "$g",
    "$h",
    "$a",
    "$nowhere",
    {"g": "$g"},
    {"g": "$g", "h": "$h"},
    {"h": "$h", "g": "$g", "a": "$a"},
    {"gone": "$nowhere", "h": "$h"},
]
IN_VALUES: list[Any] = [0, 1, Int64(1), 2.5, "1", "x", HEX, ObjectId(HEX), True, WHEN, -3]


def _group_document(n: int, rng: random.Random) -> dict[str, Any]:
    document: dict[str, Any] = {"_id": n}
    for field, choices in (
        ("g", GROUP_VALUES),
        ("h", [1, Int64(1), 1.0, "1", None, True, 2]),
        ("a", MIXED),
        ("s", [0, 1, 2, 3, "1", 1.0, [1, 2]]),
    ):
        value = rng.choice([*choices, MISSING])
        if value is not MISSING:
            document[field] = value
    return document


def _random_match(rng: random.Random) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if rng.random() < 0.4:
        query["h"] = rng.choice([1, Int64(1), 1.0, "1", True, 2])
    if rng.random() < 0.4:
        query["s"] = {"$in": rng.sample(IN_VALUES, rng.randint(1, 4))}
    if rng.random() < 0.3:
        query["a"] = {rng.choice(["$gt", "$gte", "$lt", "$lte"]): rng.choice(RANGE_BOUNDS)}
    if rng.random() < 0.2:
        query["g"] = rng.choice([v for v in GROUP_VALUES if not isinstance(v, (list, dict))])
    return query


async def _raw_multiset(collection: Any, pipeline: list[dict[str, Any]]) -> list[bytes]:
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    raw = collection.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
    cursor = await raw.aggregate(pipeline)
    return sorted([document.raw async for document in cursor])


def _forced_to_go(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same pipeline with its $match under a top-level $and: never exact, so FerretDB reads
    the documents and runs its own $group."""
    match, *rest = pipeline
    return [{"$match": {"$and": [match["$match"]]}}, *rest]


async def test_pushed_down_group_counts_equal_ferretdbs_own_group(mongo_db) -> None:
    """Property: on fields of mixed types (numbers of three types, null, missing, arrays,
    documents, …), a pushed-down $match + $group count gives exactly the documents FerretDB's
    Go $group gives, and count_documents the count of the matching documents."""
    rng = random.Random(2002)
    mixed = mongo_db["grouped"]
    await mixed.insert_many([_group_document(n, rng) for n in range(500)])

    for _ in range(150):
        query = _random_match(rng)
        key = rng.choice(GROUP_KEYS)
        group: dict[str, Any] = {"_id": key}
        if rng.random() < 0.9:
            group[rng.choice(["n", "count", "total"])] = {"$sum": 1}
        pipeline = [{"$match": query}, {"$group": group}]
        pushed = await _raw_multiset(mixed, pipeline)
        assert pushed == await _raw_multiset(mixed, _forced_to_go(pipeline)), pipeline
        if not query:
            assert pushed == await _raw_multiset(mixed, [{"$group": group}]), group

        counted = await mixed.count_documents(query)
        assert counted == await mixed.count_documents({"$and": [query]}), query
        assert counted == len([d async for d in mixed.find({"$and": [query]}, {"_id": 1})]), query


async def test_the_services_gauges_and_state_counts_are_pushed_down_exactly(mongo_db) -> None:
    """The pipelines of processing's gauges and the worklist's state counts, pushed down and on
    FerretDB's Go path, on cases whose fields sometimes hold unexpected types."""
    rng = random.Random(77)
    cases = mongo_db["cases"]
    await cases.create_index([("unit_code", 1), ("active", 1), ("state", 1)])
    documents = []
    for n in range(600):
        document = {
            "_id": f"C{n:04d}",
            "unit_code": rng.choice(["U1", "U2", "U3", 1, None, ["U1"]]),
            "active": rng.choice([True, True, True, False, 1, None]),
            "state": rng.choice([0, 1, 2, 3, 4, Int64(2), 2.0, "2", [1, 2]]),
            "procedure_code": rng.choice(["P1", "P2"]),
            "channel": rng.choice(["online", "counter"]),
            "due_sort": WHEN + timedelta(hours=rng.randint(-100, 100)),
        }
        if rng.random() < 0.05:
            del document[rng.choice(["unit_code", "state", "due_sort", "active"])]
        documents.append(document)
    await cases.insert_many(documents)

    pipelines = [
        [
            {"$match": {"active": True}},
            {"$group": {"_id": {"unit": "$unit_code", "state": "$state"}, "n": {"$sum": 1}}},
        ],
        [
            {"$match": {"active": True, "state": {"$in": [0, 1, 2]}, "due_sort": {"$lt": WHEN}}},
            {"$group": {"_id": "$unit_code", "n": {"$sum": 1}}},
        ],
        [
            {"$match": {"active": True, "unit_code": "U1", "procedure_code": "P1"}},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}},
        ],
        [
            {"$match": {"active": True, "unit_code": "U2", "channel": "online"}},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}},
        ],
        [{"$match": {"state": 2}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}],
    ]
    for pipeline in pipelines:
        pushed = await _raw_multiset(cases, pipeline)
        assert pushed, pipeline
        assert pushed == await _raw_multiset(cases, _forced_to_go(pipeline)), pipeline
    for query in ({"active": True}, {"state": {"$in": [1, 2]}}, {"unit_code": "U3"}, {}):
        counted = await cases.count_documents(query)
        assert counted == len([d async for d in cases.find({"$and": [query]}, {"_id": 1})]), query

    # $in over scalars is exact now: a find with it keeps its sort and limit pushed down
    explained = await mongo_db.command(
        "explain",
        {
            "find": "cases",
            "filter": {"unit_code": "U1", "state": {"$in": [1, 2]}},
            "sort": {"due_sort": 1},
            "limit": 5,
        },
    )
    assert explained["limitPushdown"], explained


async def test_an_update_command_longer_than_the_connection_pool_completes(mongo_db) -> None:
    """Patch 0009: each statement of an update command gives its PostgreSQL connection back
    before the next one. Upstream held every statement's connection until the command ended, so
    a command of more statements than FerretDB's pool has connections waited forever."""
    docs = mongo_db["long_update"]
    count = postgres_server.FERRETDB_POOL + 10
    await docs.insert_many([{"_id": i, "n": 0} for i in range(count)])
    updates = [UpdateOne({"_id": i}, {"$inc": {"n": 1}}) for i in range(count)]
    result = await asyncio.wait_for(docs.bulk_write(updates, ordered=False), timeout=60)
    assert (result.matched_count, result.modified_count) == (count, count)
    assert await docs.count_documents({"n": 1}) == count


async def test_single_document_writes_keep_their_errors_and_effects(mongo_db) -> None:
    """Patch 0003 writes one document without BEGIN/COMMIT: a duplicate `_id` is still error
    11000 with nothing written, an update still changes exactly its document, and a write of
    several batches (FerretDB's batch is 100 documents) still goes in whole."""
    docs = mongo_db["single_writes"]
    await docs.insert_one({"_id": "a", "n": 1})
    with pytest.raises(DuplicateKeyError):
        await docs.insert_one({"_id": "a", "n": 2})
    assert await docs.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    await docs.insert_one({"_id": "b", "n": 1})
    result = await docs.update_one({"_id": "a"}, {"$inc": {"n": 5}})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert [d["n"] async for d in docs.find({}).sort("_id", ASCENDING)] == [6, 1]
    await docs.insert_many([{"_id": f"many-{i:03}"} for i in range(250)])
    assert await docs.count_documents({"_id": {"$gte": "many-"}}) == 250

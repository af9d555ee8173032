"""FerretDB on PostgreSQL serves the services' equality filters from an index: devstack's event
trigger (devstack/postgres/gin_mirror.sql) gives each FerretDB index a GIN twin that serves the
`_jsonb->'field' @> value` conditions FerretDB pushes down."""

from __future__ import annotations

import json

import pytest
from pymongo import ASCENDING

from devstack import postgres_server
from devstack.config import load_config

CONFIG = load_config("test")
pytestmark = pytest.mark.skipif(
    CONFIG.mongo_backend != "postgresql", reason="the test profile runs FerretDB on SQLite"
)


def sql(statement: str) -> str:
    result = postgres_server.psql(CONFIG, statement, database=postgres_server.DATABASE)
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

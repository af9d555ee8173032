"""The contract of reporting's read-model port (`domain.ports.ReadModelStore`), run against the
in-memory fake (`adapters.memory.MemoryStore`) and the real FerretDB: the MongoDB store of one
set (`ReportingStore`) and the service's pointer-following `ActiveStore`. The handler and API
tests on the fake hold for the service only as long as these pass for every adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.reporting.adapters.memory import MemoryStore
from services.reporting.adapters.store import ActiveStore, ReportingStore
from services.reporting.domain.facts import facts_update
from services.reporting.domain.ports import ReadModelStore
from shared.contracts.catalogue import Fee, Procedure
from shared.contracts.events import Channel
from tests.unit.reporting.scenario import T0, notified, step, submitted

Q1, Q2 = "2026-Q1", "2026-Q2"
KEY_FIELDS = ("quarter", "unit", "procedure", "channel", "level")


@pytest.fixture(params=["memory", "mongo", "mongo-active"])
async def store(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[Any]
) -> AsyncIterator[ReadModelStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    mongo = ReportingStore(mongo_db) if request.param == "mongo" else ActiveStore(mongo_db)
    await mongo.ensure_indexes()
    yield mongo


async def record(store: ReadModelStore, event: Any, event_id: str) -> bool:
    return await store.record(event.dossier_code, event_id, facts_update(event))


def counts(row: dict[str, Any]) -> dict[str, int]:
    """A row's non-zero counts (a store may keep a count that fell back to 0)."""
    return {k: v for k, v in row.items() if k not in ("_id", *KEY_FIELDS) and v}


async def test_an_event_is_recorded_once(store: ReadModelStore) -> None:
    event = submitted(1, "P1", 4, Channel.ONLINE, fee=100_000)
    assert await record(store, event, "e1") is True
    assert await record(store, event, "e1") is False

    [row] = await store.counters_for([Q1])
    assert {k: row[k] for k in KEY_FIELDS} == {
        "quarter": Q1,
        "unit": "G12",
        "procedure": "P1",
        "channel": 2,
        "level": 4,
    }
    assert counts(row) == {"received": 1, "online": 1, "with_fee": 1, "in_progress": 1}


async def test_counters_follow_the_facts_in_any_order(store: ReadModelStore) -> None:
    # The result and a notification arrive before the submission: nothing counts until it does.
    assert await record(store, step(2, "P2", 4, 9, 50, due_at=T0 + timedelta(hours=48)), "e1")
    assert await record(store, notified(2, "delivered"), "e2")
    assert await store.counters_for([Q1]) == []
    assert await record(store, submitted(2, "P2", 3, Channel.COUNTER), "e3")
    [row] = await store.counters_for([Q1])
    assert counts(row) == {
        "received": 1,
        "counter": 1,
        "results_issued": 1,
        "finished_late": 1,
        "notified_delivered": 1,
    }


async def test_a_later_fact_moves_counts_between_fields(store: ReadModelStore) -> None:
    assert await record(store, submitted(3, "P1", 4, Channel.ONLINE), "e1")
    assert await record(store, step(3, "P1", 1, 2, 1, due_at=T0 + timedelta(hours=48)), "e2")
    [row] = await store.counters_for([Q1])
    assert counts(row) == {"received": 1, "online": 1, "in_progress": 1}

    assert await record(store, step(3, "P1", 2, 3, 3), "e3")  # not received
    [row] = await store.counters_for([Q1])
    assert counts(row) == {"received": 1, "online": 1, "refused": 1}
    assert row.get("in_progress", 0) == 0


async def test_counters_are_read_quarter_by_quarter(store: ReadModelStore) -> None:
    later = T0 + timedelta(days=100)  # 2026-Q2
    events = [
        submitted(4, "P3", 2, Channel.POST),
        submitted(5, "P1", 4, Channel.ONLINE),
        submitted(6, "P2", 3, Channel.COUNTER).model_copy(update={"occurred_at": later}),
    ]
    for n, event in enumerate(events):
        assert await record(store, event, f"e{n}")

    first = await store.counters_for([Q1])
    assert [r["_id"] for r in first] == sorted(r["_id"] for r in first)
    assert {(r["quarter"], r["procedure"]) for r in first} == {(Q1, "P1"), (Q1, "P3")}
    both = await store.counters_for([Q2, Q1])
    assert [r["quarter"] for r in both] == [Q2, Q1, Q1]
    assert await store.counters_for(["2025-Q4"]) == []
    every = await store.all_counters()
    assert sorted(r["_id"] for r in every) == sorted(r["_id"] for r in both)
    assert sum(r["received"] for r in every) == 3


async def test_the_catalogue_copy_keeps_the_last_version(store: ReadModelStore) -> None:
    assert await store.all_procedures() == []
    procedure = Procedure(
        code="P1",
        name="Thủ tục 1",
        unit_code="G12",
        unit_name="Vụ A",
        field="f",
        level=3,
        fees=[Fee(name="phí", amount_vnd=100_000)],
    )
    await store.save_procedure(procedure)
    await store.save_procedure(procedure.model_copy(update={"level": 4}))
    await store.save_procedure(procedure.model_copy(update={"code": "P2", "fees": []}))

    rows = sorted(await store.all_procedures(), key=lambda row: row["_id"])
    assert rows == [
        {
            "_id": "P1",
            "name": "Thủ tục 1",
            "unit_code": "G12",
            "unit_name": "Vụ A",
            "level": 4,
            "fee_vnd": 100_000,
        },
        {
            "_id": "P2",
            "name": "Thủ tục 1",
            "unit_code": "G12",
            "unit_name": "Vụ A",
            "level": 3,
            "fee_vnd": 0,
        },
    ]

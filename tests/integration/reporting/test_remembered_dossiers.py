"""Reporting's MongoDB store remembers the dossiers it wrote last: a dossier's next event is one
write on its version, a submission one insert. The counters stay exact when the remembered
document is out of date (another replica wrote the dossier meanwhile) or gone (a restart)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.reporting.adapters.memory import MemoryStore
from services.reporting.adapters.store import ReportingStore
from services.reporting.domain.facts import facts_update
from shared.contracts.events import Channel
from tests.unit.reporting.scenario import T0, notified, script, step, submitted


async def record(store: Any, event: Any, event_id: str) -> bool:
    return await store.record(event.dossier_code, event_id, facts_update(event))


def figures(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {row["_id"]: {k: v for k, v in row.items() if isinstance(v, int) and v} for row in rows}


async def test_a_dossier_costs_one_write_per_event_and_one_per_counter(watched_db) -> None:
    db, commands = watched_db
    store = ReportingStore(db)
    await store.ensure_indexes()
    commands.sent.clear()

    assert await record(store, submitted(1, "P1", 4, Channel.ONLINE), "e1")
    assert await record(store, step(1, "P1", 1, 2, 1, due_at=T0 + timedelta(hours=48)), "e2")
    assert await record(store, notified(1, "delivered"), "e3")
    assert not await record(store, notified(1, "delivered"), "e3")  # redelivered

    assert commands.sent == [
        ("insert", "dossiers"),
        ("update", "counters"),
        ("update", "dossiers"),  # the step changes no counter
        ("update", "dossiers"),
        ("update", "counters"),
    ]


async def test_two_replicas_writing_one_dossier_count_it_exactly(mongo_db) -> None:
    """Each event of the script goes to one of two stores in turn (as after rebalances), some
    twice: each store's remembered documents are often out of date."""
    replicas = [ReportingStore(mongo_db), ReportingStore(mongo_db)]
    expected = MemoryStore()
    for n, event in enumerate(script()):
        if not hasattr(event, "dossier_code"):
            continue  # the catalogue's events
        event_id = f"e{n}"
        await record(expected, event, event_id)
        await record(replicas[n % 2], event, event_id)
        if n % 3 == 0:
            await record(replicas[(n + 1) % 2], event, event_id)  # redelivered to the other

    assert figures(await replicas[0].all_counters()) == figures(await expected.all_counters())


async def test_after_a_restart_redelivered_events_count_once(mongo_db) -> None:
    db = mongo_db
    events = [submitted(2, "P2", 3, Channel.COUNTER), notified(2, "delivered")]
    before = ReportingStore(db)
    for n, event in enumerate(events):
        await record(before, event, f"e{n}")

    restarted = ReportingStore(db)  # nothing remembered
    for n, event in enumerate(events):
        assert not await record(restarted, event, f"e{n}")
    assert await record(restarted, notified(2, "failed"), "e9")

    [row] = await restarted.all_counters()
    assert (row["notified_delivered"], row["notified_failed"], row["received"]) == (1, 1, 1)

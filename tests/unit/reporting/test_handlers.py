"""The subscribers and use cases of reporting on the in-memory read models (no broker, no
database): the scripted events (`scenario`) give the exact report figures and gauges, however the
topics interleave and however often events are delivered. The same script runs over the real
broker and database in `tests/integration/reporting/test_reporting_service.py`."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest

from services.reporting.adapters.memory import MemoryStore
from services.reporting.domain.errors import InvalidPeriod, NotAllowed
from services.reporting.service import ReportingService
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import Channel
from shared.runtime.auth import Role, Staff
from tests.unit.reporting.scenario import (
    EXPECTED_MINISTRY,
    consume,
    deliveries,
    submitted,
)

ADMIN = Staff(subject="u1", roles=frozenset({Role.admin}))
Q1: dict[str, Any] = {"year": 2026, "quarter": 1}


async def reporting_after(cloud_events: list[CloudEvent]) -> ReportingService:
    reporting = ReportingService(MemoryStore())
    await consume(reporting, cloud_events)
    return reporting


async def test_the_script_gives_exact_figures() -> None:
    reporting = await reporting_after(deliveries())

    report = (await reporting.quarterly_report(ADMIN, **Q1)).model_dump()
    assert report["ministry"]["counts"] == EXPECTED_MINISTRY
    units = {u["unit_code"]: u for u in report["units"]}
    assert units["G12"]["counts"]["received"] == 4
    assert units["G12"]["unit_name"] == "Vụ A"
    assert units["H56"]["counts"]["withdrawn"] == 1
    assert units["H56"]["counts"]["in_progress_overdue"] == 1
    indicators = {i["code"]: i for i in report["ministry"]["indicators"]}
    on_time = indicators["on_time_rate"]
    assert (on_time["numerator"], on_time["denominator"]) == (2, 4)
    assert indicators["online_rate"]["percent"] == 50.0
    assert indicators["online_payment_rate"]["percent"] == 100.0
    assert indicators["digitisation_rate"]["percent"] == 50.0
    # One rating of 5 (satisfied) and one of 2 (not yet satisfied).
    satisfaction = indicators["satisfaction_rate"]
    assert (satisfaction["numerator"], satisfaction["denominator"]) == (1, 2)
    assert satisfaction["percent"] == 50.0
    catalogue = report["catalogue"]
    assert catalogue["by_level"] == {"1": 0, "2": 1, "3": 1, "4": 1}
    assert catalogue["level4_share"] == 0.5
    assert [(c["code"], c["received"]) for c in catalogue["upgrade_candidates"]] == [
        ("P2", 2),
        ("P3", 2),
    ]
    other = await reporting.quarterly_report(ADMIN, year=2026, quarter=2)
    assert other.ministry.counts["received"] == 0
    # A date range rolls into the quarters it touches.
    ranged = await reporting.quarterly_report(ADMIN, start=date(2025, 12, 1), end=date(2026, 2, 1))
    assert ranged.quarters == ["2025-Q4", "2026-Q1"]
    assert ranged.ministry.counts == EXPECTED_MINISTRY


def as_the_topics_deliver(cloud_events: list[CloudEvent], seed: int) -> list[CloudEvent]:
    """A random interleaving of the topics (each keeps the order of one dossier's events, as its
    partition does), with some events redelivered after their first delivery."""
    rng = random.Random(seed)
    queues: dict[tuple[str, str], list[CloudEvent]] = {}
    for cloud_event in cloud_events:
        queues.setdefault((cloud_event.type, cloud_event.subject), []).append(cloud_event)
    delivered: list[CloudEvent] = []
    while queues:
        key = rng.choice(sorted(queues))
        delivered.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
        if rng.random() < 0.3:
            delivered.append(rng.choice(delivered))
    return delivered


@pytest.mark.parametrize("seed", range(5))
async def test_any_interleaving_of_topics_and_any_redelivery_give_the_same_figures(
    seed: int,
) -> None:
    cloud_events = deliveries()
    in_order = await reporting_after(cloud_events)
    expected = (await in_order.quarterly_report(ADMIN, **Q1)).model_dump()
    assert expected["ministry"]["counts"] == EXPECTED_MINISTRY

    reporting = await reporting_after(as_the_topics_deliver(cloud_events, seed))

    assert (await reporting.quarterly_report(ADMIN, **Q1)).model_dump() == expected
    await consume(reporting, cloud_events)  # every event once more: nothing changes
    assert (await reporting.quarterly_report(ADMIN, **Q1)).model_dump() == expected


async def test_record_tells_a_new_event_from_a_redelivery() -> None:
    reporting = ReportingService(MemoryStore())
    event = submitted(1, "P1", 4, Channel.ONLINE)
    assert await reporting.record(event, "event-1")
    assert not await reporting.record(event, "event-1")
    assert await reporting.record(event, "event-2")  # another id: applied (same facts)
    report = await reporting.quarterly_report(ADMIN, **Q1)
    assert report.ministry.counts["received"] == 1


async def test_unit_heads_get_their_unit_and_admins_any() -> None:
    reporting = await reporting_after(deliveries())
    head = Staff(subject="h", unit="H56", roles=frozenset({Role.unit_head}))

    own = await reporting.quarterly_report(head, **Q1)
    assert own.scope == "H56" and [u.unit_code for u in own.units] == ["H56"]
    assert own.ministry.counts["received"] == 2 and own.ministry.unit_name == "Cục B"
    assert own.catalogue.by_level == {"1": 0, "2": 1, "3": 0, "4": 0}
    assert (await reporting.quarterly_report(head, unit="H56", **Q1)).scope == "H56"
    picked = await reporting.quarterly_report(ADMIN, unit="G12", **Q1)
    assert picked.scope == "G12" and picked.ministry.counts["received"] == 4
    with pytest.raises(NotAllowed, match="own unit only"):
        await reporting.quarterly_report(head, unit="G12", **Q1)
    unitless = Staff(subject="x", roles=frozenset({Role.unit_head}))
    with pytest.raises(NotAllowed, match="needs a unit"):
        await reporting.quarterly_report(unitless, **Q1)


@pytest.mark.parametrize(
    ("period", "detail"),
    [
        ({}, "Give either year and quarter"),
        ({"year": 2026}, "Give either year and quarter"),
        ({"year": 2026, "quarter": 1, "start": date(2026, 1, 1)}, "Give either"),
        ({"year": 2026, "quarter": 5}, "quarter must be 1..4"),
        ({"start": date(2026, 2, 1), "end": date(2026, 1, 1)}, "≤ 10 years"),
        ({"start": date(2000, 1, 1), "end": date(2026, 1, 1)}, "≤ 10 years"),
    ],
)
async def test_a_period_is_a_quarter_or_a_date_range(period: dict[str, Any], detail: str) -> None:
    reporting = ReportingService(MemoryStore())
    with pytest.raises(InvalidPeriod, match=detail):
        await reporting.quarterly_report(ADMIN, **period)


async def test_business_gauges_come_from_the_read_models() -> None:
    reporting = await reporting_after(deliveries())
    snapshot = await reporting.business_snapshot()
    assert snapshot.open == {"G12": 1, "H56": 1}
    assert snapshot.overdue == {"G12": 0, "H56": 1}
    assert snapshot.notification_failures == {"G12": 1, "H56": 0}
    assert snapshot.level4_share == 0.5
    assert snapshot.received[("G12", "4", "online")] == 2

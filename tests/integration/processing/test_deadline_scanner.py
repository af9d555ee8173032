"""Warnings and overdue flags from the deadline scanner, once each, with two scanners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.processing.adapters.store import CaseStore
from services.processing.domain.lifecycle import Action
from services.processing.domain.workflow import Command, apply, open_case
from services.processing.service.cases import ProcessingService
from services.processing.service.scanner import LEASE_NAME, QUARANTINE, DeadlineScanner
from services.processing.settings import ProcessingSettings
from shared.contracts.catalogue import Procedure, ProcessingTime, TimeUnit
from shared.contracts.cloudevents import CloudEvent, unwrap
from shared.contracts.events import Channel
from shared.runtime.outbox import _cloud_event
from tests.factories import dossier_code, submitted


class _Relay:
    def poke(self, document_id: object = None) -> None:
        pass


def case_service(db: AsyncDatabase[Any]) -> ProcessingService:
    store = CaseStore(db, processed_topic="processed", source="/test")
    return ProcessingService(
        settings=ProcessingSettings(scanner_lease_seconds=60),
        store=store,
        relay=_Relay(),  # type: ignore[arg-type]
    )


PROCEDURE = Procedure(
    code="1.004473",
    name="Thủ tục",
    unit_code="G12",
    unit_name="Cục",
    field="KH&CN",
    level=4,
    processing_time=ProcessingTime(value=5, unit=TimeUnit.WORKING_DAYS),
)


async def in_processing_case(one: ProcessingService, code: str, received: datetime) -> None:
    event = submitted(code).model_copy(update={"occurred_at": received})
    opened = open_case(event, PROCEDURE, one.rules)
    await one.store.insert(opened, "submitted-1")
    received_case = apply(opened.case, Command(Action.RECEIVE, "o1", received), one.rules)
    await one.store.save(received_case, 1)


async def pending_actions(db: AsyncDatabase[Any], code: str) -> list[str]:
    document = await db["cases"].find_one({"_id": code})
    events: list[CloudEvent] = [_cloud_event(entry) for entry in document["outbox"]]
    return [unwrap(event).action for event in events]  # type: ignore[union-attr]


async def test_each_warning_is_emitted_once_even_with_two_scanners(
    serial_db: AsyncDatabase[Any],
) -> None:
    first, second = case_service(serial_db), case_service(serial_db)
    await first.store.ensure_indexes()
    code = dossier_code(31)
    received = datetime(2019, 4, 26, 10, tzinfo=UTC)
    await in_processing_case(first, code, received)
    scanners = [DeadlineScanner(first, "replica-a"), DeadlineScanner(second, "replica-b")]
    later = received + timedelta(days=60)

    emitted = await asyncio.gather(*(s.scan_once(later) for s in scanners))
    assert sorted(emitted) == [0, 3]  # only the lease holder scanned

    # The holder's lease expires mid-work: the other replica takes over and finds nothing to do.
    await serial_db["leases"].update_one(
        {"_id": LEASE_NAME}, {"$set": {"until": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    assert await asyncio.gather(*(s.scan_once(later) for s in scanners)) in ([0, 0],)

    actions = await pending_actions(serial_db, code)
    assert actions == [
        "receive",
        "start_processing",
        "deadline_warning_50",
        "deadline_warning_80",
        "overdue",
    ]
    document = await serial_db["cases"].find_one({"_id": code})
    assert document["state"] == 4 and document["next_check_at"] is None


async def test_racing_writers_cannot_both_emit_a_warning(serial_db: AsyncDatabase[Any]) -> None:
    """Without the lease (two scanners in one pass), the version compare-and-set decides."""
    one = case_service(serial_db)
    code = dossier_code(32)
    received = datetime(2019, 4, 26, 10, tzinfo=UTC)
    await in_processing_case(one, code, received)
    a, b = DeadlineScanner(one, "a"), DeadlineScanner(one, "b")
    later = received + timedelta(days=60)
    results = await asyncio.gather(a._check(code, later), b._check(code, later))
    assert sorted(results) == [0, 3]
    assert (await pending_actions(serial_db, code)).count("overdue") == 1


async def test_a_paper_dossier_moves_to_processing_the_next_morning(
    serial_db: AsyncDatabase[Any],
) -> None:
    one = case_service(serial_db)
    code = dossier_code(33)
    # Thu 25 Apr 2019, 16:00 in Ha Noi: after the 15:00 cut-off.
    arrival = datetime(2019, 4, 25, 9, tzinfo=UTC)
    event = submitted(code).model_copy(update={"channel": Channel.COUNTER, "occurred_at": arrival})
    await one.store.insert(open_case(event, PROCEDURE, one.rules), "e1")
    scanner = DeadlineScanner(one, "a")
    assert await scanner.scan_once(arrival + timedelta(hours=2)) == 0
    assert await scanner.scan_once(datetime(2019, 4, 26, 1, tzinfo=UTC)) == 1  # 08:00 local
    assert (await serial_db["cases"].find_one({"_id": code}))["state"] == 4


async def test_a_case_the_scanner_cannot_handle_is_set_aside_and_the_others_go_on(
    serial_db: AsyncDatabase[Any],
) -> None:
    service = case_service(serial_db)
    await service.store.ensure_indexes()
    received = datetime(2019, 4, 26, 10, tzinfo=UTC)
    broken, healthy = dossier_code(41), dossier_code(42)
    await in_processing_case(service, broken, received - timedelta(hours=1))  # due first
    await in_processing_case(service, healthy, received)
    # A stored case the rules cannot take (written by hand, or by an older version).
    await serial_db["cases"].update_one({"_id": broken}, {"$set": {"due_at": "not a date"}})
    later = received + timedelta(days=60)

    emitted = await DeadlineScanner(service, "replica-a").scan_once(later)

    assert emitted == 3  # the healthy case got its two warnings and its overdue flag
    assert (await pending_actions(serial_db, healthy))[-1] == "overdue"
    set_aside = (await serial_db["cases"].find_one({"_id": broken}))["next_check_at"]
    assert set_aside == later + QUARANTINE  # tried again later, not at every pass

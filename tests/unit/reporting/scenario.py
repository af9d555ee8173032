"""A scripted mix of catalogue and dossier events with the exact figures of its 2026-Q1 report,
shared by the reporting tests on the fakes (`tests/unit/reporting`) and on the real broker and
database (`tests/integration/reporting`), and the delivery of events to the subscribers without a
broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.reporting.handlers import handlers_for
from services.reporting.service import ReportingService
from shared.contracts.catalogue import Fee, Procedure
from shared.contracts.cloudevents import CloudEvent, unwrap, wrap
from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DocumentRef,
    DossierNotified,
    DossierPaid,
    DossierProcessed,
    DossierRated,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
    StepAction,
)

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 09:00 on 5 Jan 2026 in Ha Noi: 2026-Q1
UNIT_OF = {"P1": "G12", "P2": "G12", "P3": "H56"}
DOC = DocumentRef(
    document_type="d1",
    file_name="a.pdf",
    content_type="application/pdf",
    size_bytes=1,
    storage_id="s",
)


def code(n: int) -> str:
    return f"000.00.21.G12-260105-{n:04d}"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def submitted(n: int, procedure: str, level: int, channel: Channel, fee: int = 0) -> Any:
    return DossierSubmitted(
        dossier_code=code(n),
        occurred_at=T0,
        procedure_code=procedure,
        unit_code=UNIT_OF[procedure],
        level=level,
        channel=channel,
        applicant=Applicant(
            kind=ApplicantKind.PERSON, name="Nguyễn Văn A", identifier="001203004567"
        ),
        contact=Contact(email="a@example.vn"),
        documents=[DOC] if channel == Channel.ONLINE else [],
        fee_vnd=fee,
    )


# The step that usually enters each state (reporting reads the states; `overdue` is the only
# action it looks at).
ENTERED_BY: dict[int, StepAction] = {
    2: StepAction.RECEIVE,
    3: StepAction.REFUSE_INTAKE,
    4: StepAction.START_PROCESSING,
    5: StepAction.REQUEST_SUPPLEMENT,
    6: StepAction.REQUEST_PAYMENT,
    7: StepAction.REQUEST_WITHDRAWAL,
    8: StepAction.CONFIRM_WITHDRAWAL,
    9: StepAction.ISSUE_RESULT,
    10: StepAction.RETURN_RESULT,
}


def step(n: int, procedure: str, prev: int | None, state: int, hours: float, **kw: Any) -> Any:
    return DossierProcessed(
        dossier_code=code(n),
        occurred_at=at(hours),
        procedure_code=procedure,
        unit_code=UNIT_OF[procedure],
        action=kw.pop("action", ENTERED_BY[state]),
        state=state,
        previous_state=prev,
        actor="officer-1",
        **kw,
    )


def notified(n: int, status: str) -> Any:
    return DossierNotified(
        dossier_code=code(n),
        occurred_at=at(1),
        notification_id=uuid.uuid4().hex,
        source_event_id="e",
        channel="email",
        status=status,
    )


def rated(n: int, procedure: str, score: int, hours: float) -> Any:
    return DossierRated(
        dossier_code=code(n),
        occurred_at=at(hours),
        procedure_code=procedure,
        unit_code=UNIT_OF[procedure],
        score=score,
    )


def script() -> list[Any]:
    due = at(48)
    return [
        Procedure(
            code="P1",
            name="Thủ tục 1",
            unit_code="G12",
            unit_name="Vụ A",
            field="f",
            level=4,
            fees=[Fee(name="phí", amount_vnd=100_000)],
        ),
        Procedure(
            code="P2", name="Thủ tục 2", unit_code="G12", unit_name="Vụ A", field="f", level=3
        ),
        Procedure(
            code="P3", name="Thủ tục 3", unit_code="H56", unit_name="Cục B", field="f", level=2
        ),
        # 1: online, paid, result on the due day with an electronic result, notified.
        submitted(1, "P1", 4, Channel.ONLINE, fee=100_000),
        step(1, "P1", 1, 2, 1, due_at=due),
        step(1, "P1", 2, 4, 1),
        DossierPaid(
            dossier_code=code(1),
            occurred_at=at(2),
            transaction_id="t1",
            amount_vnd=100_000,
            provider="sim",
        ),
        step(1, "P1", 4, 9, 47, result_document=DOC),
        notified(1, "delivered"),
        step(1, "P1", 9, 10, 48, action="return_result"),
        rated(1, "P1", 5, 49),
        # 2: counter, result late.
        submitted(2, "P2", 3, Channel.COUNTER),
        step(2, "P2", None, 2, 0, due_at=due),
        step(2, "P2", 2, 4, 1),
        step(2, "P2", 4, 9, 50),
        # 3: online, not received.
        submitted(3, "P1", 4, Channel.ONLINE),
        step(3, "P1", 1, 3, 3),
        # 4: counter, withdrawn.
        submitted(4, "P3", 2, Channel.COUNTER),
        step(4, "P3", None, 2, 0, due_at=due),
        step(4, "P3", 2, 4, 1),
        DossierWithdrawn(dossier_code=code(4), occurred_at=at(2), reason="rút"),
        step(4, "P3", 4, 7, 2),
        step(4, "P3", 7, 8, 3),
        rated(4, "P3", 2, 4),
        # 5: online, a supplement requested and supplied, still in progress; a failed message.
        submitted(5, "P2", 3, Channel.ONLINE),
        step(5, "P2", 1, 2, 1, due_at=due),
        step(5, "P2", 2, 4, 1),
        step(5, "P2", 4, 5, 2),
        DossierSupplemented(dossier_code=code(5), occurred_at=at(3), documents=[DOC]),
        step(5, "P2", 5, 4, 3, due_at=at(96)),
        notified(5, "technical-failure"),
        # 6: post, flagged overdue by processing.
        submitted(6, "P3", 2, Channel.POST),
        step(6, "P3", None, 2, 0, due_at=due),
        step(6, "P3", 2, 4, 1),
        step(6, "P3", 4, 4, 48, action="overdue"),
    ]


EXPECTED_MINISTRY = {
    "received": 6,
    "online": 3,
    "counter": 2,
    "post": 1,
    "with_fee": 1,
    "paid_online": 1,
    "in_progress": 2,
    "in_progress_overdue": 1,
    "in_progress_late_by_supplements": 0,
    "results_issued": 2,
    "digitised": 1,
    "finished_early": 0,
    "finished_on_time": 1,
    "finished_late": 1,
    "refused": 1,
    "withdrawn": 1,
    "supplement_requests": 1,
    "notified_delivered": 1,
    "notified_failed": 1,
    "rated": 2,
    "rated_satisfied": 1,
    "rating_points": 7,
}


def deliveries() -> list[CloudEvent]:
    """The script as the broker delivers it: one CloudEvent (with its own id) per event."""
    return [wrap(m, "/test", time=T0 if isinstance(m, Procedure) else None) for m in script()]


async def consume(reporting: ReportingService, cloud_events: list[CloudEvent]) -> None:
    """Hand each CloudEvent to the subscriber of its type, as the consumer does."""
    handlers = handlers_for(reporting)
    for cloud_event in cloud_events:
        event = unwrap(cloud_event, list(handlers))
        await handlers[type(event)](event, cloud_event)

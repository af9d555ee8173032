"""The amount the unit asks for reaches the citizen's dossier and is what intake charges (issue 14
B); processing's steps are read by their enumeration (issue 13 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain.dossier import Dossier, processing_step
from services.intake.domain.errors import AlreadyPaid, NothingToPay
from shared.contracts.catalogue import Fee, Procedure
from shared.contracts.events import Channel, DossierState, StepAction
from tests.factories import dossier_code, processed

ASKED_AT = datetime(2026, 11, 30, 9, tzinfo=UTC)


def dossier(fee_vnd: int = 0) -> Dossier:
    procedure = Procedure(
        code="1.004473",
        name="Cấp giấy phép",
        unit_code="G12",
        unit_name="Cục",
        field="KH&CN",
        level=4,
        fees=[Fee(name="Lệ phí", amount_vnd=fee_vnd)] if fee_vnd else [],
    )
    return Dossier.submitted(
        code=dossier_code(),
        procedure=procedure,
        applicant={"kind": "person", "name": "Nguyễn Văn A", "identifier": "001203004567"},
        contact={},
        form={},
        documents=[],
        channel=Channel.ONLINE,
        received_at=ASKED_AT - timedelta(days=3),
        tracking_secret="s",
    )


def after(record: Dossier, action: StepAction, state: DossierState, **fields: object) -> Dossier:
    """`record` once intake applied processing's step (as the store's `$set` does)."""
    step = processing_step(processed(record.code, state, action, **fields))
    assert step is not None
    status = record.status.model_dump() | step.status
    return record.model_copy(update={"status": type(record.status).model_validate(status)})


def asked(record: Dossier, amount_vnd: int | None, at: datetime = ASKED_AT) -> Dossier:
    return after(
        record,
        StepAction.REQUEST_PAYMENT,
        DossierState.PAYMENT_REQUESTED,
        amount_vnd=amount_vnd,
        occurred_at=at,
    )


def test_the_requested_amount_is_charged_even_without_a_catalogue_fee() -> None:
    """Before: the catalogue fee (0 here) was charged, so the citizen got 409 'nothing to pay'."""
    record = asked(dossier(fee_vnd=0), 150_000)
    assert record.status.amount_vnd == 150_000
    assert record.status.payment_requested_at == ASKED_AT
    assert record.amount_to_pay() == 150_000


def test_the_requested_amount_wins_over_the_catalogue_fee() -> None:
    assert asked(dossier(fee_vnd=270_000), 150_000).amount_to_pay() == 150_000


def test_the_catalogue_fee_is_the_fallback_of_a_request_without_an_amount() -> None:
    assert asked(dossier(fee_vnd=270_000), None).amount_to_pay() == 270_000
    with pytest.raises(NothingToPay):
        asked(dossier(fee_vnd=0), None).amount_to_pay()


def test_a_paid_request_is_not_charged_again_and_a_new_request_reopens_payment() -> None:
    record = asked(dossier(), 150_000)
    paid = record.model_copy(update={"status": record.status.model_copy(update={"paid": True})})
    with pytest.raises(AlreadyPaid):
        paid.amount_to_pay()
    back = after(paid, StepAction.PAYMENT_RECEIVED, DossierState.IN_PROCESSING)
    again = asked(back, 90_000, ASKED_AT + timedelta(days=7))
    assert again.amount_to_pay() == 90_000 and not again.status.paid


def test_each_request_has_its_own_key() -> None:
    first = asked(dossier(), 150_000)
    assert first.payment_request_key() == asked(dossier(), 150_000).payment_request_key()
    later = asked(first, 150_000, ASKED_AT + timedelta(days=7))
    assert later.payment_request_key() != first.payment_request_key()
    assert len(first.payment_request_key()) == 32


def test_warnings_change_nothing_and_overdue_only_flags() -> None:
    record = asked(dossier(), 150_000)
    for warning in (StepAction.DEADLINE_WARNING_50, StepAction.DEADLINE_WARNING_80):
        assert (
            processing_step(processed(record.code, DossierState.PAYMENT_REQUESTED, warning)) is None
        )
    flagged = after(record, StepAction.OVERDUE, DossierState.PAYMENT_REQUESTED)
    assert flagged.status.overdue and flagged.status.amount_vnd == 150_000
    assert flagged.status.action == StepAction.REQUEST_PAYMENT

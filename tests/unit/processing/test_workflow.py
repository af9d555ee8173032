"""What actions and time do to a case, with its deadlines (pure, no I/O)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.processing.adapters.store import processed_event
from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.case import Case
from services.processing.domain.deadlines import DeadlinePolicy
from services.processing.domain.lifecycle import Action, TransitionError
from services.processing.domain.workflow import (
    Command,
    PaymentAmountMismatch,
    Rules,
    WorkflowError,
    alert_schedule,
    apply,
    due_years_without_calendar,
    open_case,
    record_payment,
    scan,
)
from services.processing.settings import ProcessingSettings
from shared.contracts.catalogue import Procedure, ProcessingTime, TimeUnit
from shared.contracts.events import Channel, DocumentRef, DossierState, StepAction
from tests.factories import submitted

VN = ZoneInfo("Asia/Ho_Chi_Minh")
RULES = Rules(WorkingCalendar())


def procedure(**overrides: object) -> Procedure:
    fields: dict[str, object] = {
        "code": "1.004473",
        "name": "Cấp giấy phép",
        "unit_code": "G12",
        "unit_name": "Cục",
        "field": "KH&CN",
        "level": 4,
        "processing_time": ProcessingTime(value=5, unit=TimeUnit.WORKING_DAYS),
    }
    fields.update(overrides)
    return Procedure.model_validate(fields)


def arrived(channel: Channel, at: datetime, proc: Procedure | None = None) -> Case:
    event = submitted().model_copy(update={"channel": channel, "occurred_at": at})
    return open_case(event, proc or procedure(), RULES).case


def do(case: Case, action: Action, at: datetime, *, rules: Rules = RULES, **fields: object) -> Case:
    return apply(case, Command(action, "officer-1", at, **fields), rules).case  # type: ignore[arg-type]


def in_processing(at: datetime = datetime(2019, 4, 26, 10, tzinfo=VN)) -> Case:
    return do(arrived(Channel.ONLINE, at - timedelta(hours=1)), Action.RECEIVE, at)


def test_an_online_dossier_waits_for_the_intake_check_without_a_due_date() -> None:
    case = arrived(Channel.ONLINE, datetime(2019, 4, 26, 9, tzinfo=VN))
    assert case.state == DossierState.SUBMITTED and case.due_at is None
    assert case.unit_code == "G12" and case.online_rank == 0


def test_receiving_an_online_dossier_starts_the_clock_and_processing_at_once() -> None:
    """DOMAIN.md: received Fri 26 Apr 2019 + 5 working days → Tue 7 May 2019."""
    case = arrived(Channel.ONLINE, datetime(2019, 4, 26, 9, tzinfo=VN))
    outcome = apply(
        case, Command(Action.RECEIVE, "o1", datetime(2019, 4, 26, 10, tzinfo=VN)), RULES
    )
    assert [s.action for s in outcome.steps] == ["receive", "start_processing"]
    assert [(s.from_state, s.to_state) for s in outcome.steps] == [(1, 2), (2, 4)]
    assert outcome.case.due_at is not None
    assert outcome.case.due_at.astimezone(VN).date() == date(2019, 5, 7)
    assert [h.action for h in outcome.case.history] == ["receive", "start_processing"]
    assert outcome.case.due_history[0].reason == "receipt"


def test_a_paper_dossier_after_the_cut_off_counts_and_moves_from_the_next_morning() -> None:
    proc = procedure(cutoff_15h=True)
    outcome = open_case(
        submitted().model_copy(
            update={
                "channel": Channel.COUNTER,
                "occurred_at": datetime(2019, 4, 25, 15, 30, tzinfo=VN),
            }
        ),
        proc,
        RULES,
    )
    case = outcome.case
    assert case.state == DossierState.RECEIVED and outcome.steps[0].action == "receive"
    assert case.start_processing_at == datetime(2019, 4, 26, 7, 30, tzinfo=VN)
    # Counted as received Fri 26 Apr: + 5 working days → Tue 7 May (DOMAIN.md's example).
    assert case.due_at is not None and case.due_at.astimezone(VN).date() == date(2019, 5, 7)
    assert case.next_check_at == case.start_processing_at
    moved = scan(case, datetime(2019, 4, 26, 8, tzinfo=VN), RULES)
    assert moved.case.state == DossierState.IN_PROCESSING
    assert [s.action for s in moved.steps] == ["start_processing"]


def test_a_supplement_pauses_the_clock_and_restarts_it_from_zero() -> None:
    case = in_processing()
    paused = do(
        case,
        Action.REQUEST_SUPPLEMENT,
        datetime(2019, 4, 29, 9, tzinfo=VN),
        reason="Thiếu bản sao",
        documents=("CMND",),
    )
    assert paused.state == DossierState.SUPPLEMENT_REQUESTED and paused.due_at is None
    assert paused.paused and paused.next_check_at is None
    resumed = apply(
        paused,
        Command(Action.SUPPLEMENT_RECEIVED, "applicant", datetime(2019, 5, 6, 9, tzinfo=VN)),
        RULES,
    ).case
    assert resumed.state == DossierState.IN_PROCESSING and not resumed.paused
    assert resumed.pauses[0].ended_at == datetime(2019, 5, 6, 9, tzinfo=VN)
    assert resumed.due_at is not None
    assert resumed.due_at.astimezone(VN).date() == date(2019, 5, 13)  # Mon 6 May + 5
    assert [d.reason for d in resumed.due_history] == ["receipt", "supplement"]


def test_the_supplement_request_needs_a_reason_and_documents() -> None:
    with pytest.raises(WorkflowError):
        do(in_processing(), Action.REQUEST_SUPPLEMENT, datetime.now(VN), reason="x")
    with pytest.raises(WorkflowError):
        do(in_processing(), Action.REQUEST_SUPPLEMENT, datetime.now(VN), documents=("a",))


def test_one_extension_at_least_a_day_before_the_due_date() -> None:
    case = in_processing()  # due Tue 7 May 2019
    extended = do(
        case,
        Action.EXTEND,
        datetime(2019, 5, 3, 9, tzinfo=VN),
        reason="Cần xin ý kiến",
        new_due_date=date(2019, 5, 14),
    )
    assert extended.due_at is not None and extended.due_at.astimezone(VN).date() == date(
        2019, 5, 14
    )
    assert extended.extensions[0].previous_due_at == case.due_at
    assert [d.reason for d in extended.due_history] == ["receipt", "extension"]
    with pytest.raises(WorkflowError, match="chỉ được gia hạn"):
        do(
            extended,
            Action.EXTEND,
            datetime(2019, 5, 6, 9, tzinfo=VN),
            reason="again",
            new_due_date=date(2019, 5, 20),
        )


def test_no_extension_on_the_due_day_or_after() -> None:
    case = in_processing()
    for when in (datetime(2019, 5, 7, 8, tzinfo=VN), datetime(2019, 5, 9, 8, tzinfo=VN)):
        with pytest.raises(WorkflowError):
            do(case, Action.EXTEND, when, reason="late", new_due_date=date(2019, 5, 20))


def test_the_result_needs_an_approval_and_a_document() -> None:
    document = DocumentRef(
        document_type="ket_qua",
        file_name="kq.pdf",
        content_type="application/pdf",
        size_bytes=3,
        storage_id="x",
    )
    case = in_processing()
    with pytest.raises(WorkflowError, match="phê duyệt"):
        do(case, Action.ISSUE_RESULT, datetime.now(VN), result_document=document)
    approved = do(case, Action.APPROVE, datetime.now(VN))
    assert approved.state == DossierState.IN_PROCESSING and approved.approved
    done = apply(
        approved,
        Command(Action.ISSUE_RESULT, "o1", datetime.now(VN), result_document=document),
        RULES,
    )
    assert done.case.state == DossierState.PROCESSED
    assert done.steps[0].result_document == document
    assert done.steps[0].citizen_action and "trực tuyến" in done.steps[0].citizen_action


def test_forbidden_moves_raise_and_change_nothing() -> None:
    case = in_processing()
    with pytest.raises(TransitionError):
        do(case, Action.RETURN_RESULT, datetime.now(VN))
    assert case.state == DossierState.IN_PROCESSING and len(case.history) == 2


def test_warnings_fire_once_each_and_overdue_after_the_due_date() -> None:
    case = in_processing()  # t0 Fri 26 Apr 10:00, due Tue 7 May 23:59
    assert case.next_check_at is not None
    early = scan(case, case.next_check_at - timedelta(seconds=1), RULES)
    assert early.steps == ()
    halfway = scan(case, case.next_check_at, RULES)
    assert [s.action for s in halfway.steps] == ["deadline_warning_50"]
    again = scan(halfway.case, case.next_check_at, RULES)
    assert again.steps == ()
    late = scan(halfway.case, datetime(2019, 5, 8, 8, tzinfo=VN), RULES)
    assert [s.action for s in late.steps] == ["deadline_warning_80", StepAction.OVERDUE]
    assert all(s.to_state == DossierState.IN_PROCESSING for s in late.steps)
    assert late.case.next_check_at is None
    assert scan(late.case, datetime(2019, 6, 1, tzinfo=VN), RULES).steps == ()


def test_fee_first_procedures_start_the_clock_when_paid() -> None:
    proc = procedure(fee_starts_clock=True)
    case = arrived(Channel.ONLINE, datetime(2019, 4, 26, 9, tzinfo=VN), proc)
    received = do(case, Action.RECEIVE, datetime(2019, 4, 26, 10, tzinfo=VN))
    assert received.due_at is None and received.clock_started_at is None
    paid = record_payment(received, datetime(2019, 5, 2, 9, tzinfo=VN), RULES)
    assert [s.action for s in paid.steps] == ["clock_started"]
    assert paid.case.due_at is not None
    # Thu 2 May + 5 working days, Sat 4 May 2019 being a make-up working day → Wed 8 May.
    assert paid.case.due_at.astimezone(VN).date() == date(2019, 5, 8)


def test_requesting_payment_and_receiving_it() -> None:
    case = do(in_processing(), Action.REQUEST_PAYMENT, datetime.now(VN), amount_vnd=500_000)
    assert case.state == DossierState.PAYMENT_REQUESTED and case.payment_amount_vnd == 500_000
    back = do(case, Action.PAYMENT_RECEIVED, datetime.now(VN), amount_vnd=500_000)
    assert back.state == DossierState.IN_PROCESSING and back.paid_at is not None


# -- issue 14: deadlines review ------------------------------------------------------------------


def test_a_fee_first_dossier_paid_when_the_unit_asked_for_the_fee_starts_its_clock() -> None:
    """The normal path: state 6, the applicant pays online, `payment_received` (6 → 4)."""
    proc = procedure(fee_starts_clock=True)
    case = arrived(Channel.ONLINE, datetime(2019, 4, 26, 9, tzinfo=VN), proc)
    received = do(case, Action.RECEIVE, datetime(2019, 4, 26, 10, tzinfo=VN))
    asked = do(received, Action.REQUEST_PAYMENT, datetime(2019, 4, 26, 11, tzinfo=VN), amount_vnd=1)
    assert asked.due_at is None and asked.clock_started_at is None
    paid = apply(
        asked,
        Command(
            Action.PAYMENT_RECEIVED, "applicant", datetime(2019, 5, 2, 9, tzinfo=VN), amount_vnd=1
        ),
        RULES,
    )
    assert [s.action for s in paid.steps] == ["payment_received", "clock_started"]
    assert paid.case.state == DossierState.IN_PROCESSING
    # Thu 2 May + 5 working days, Sat 4 May 2019 being a make-up working day → Wed 8 May.
    assert paid.case.due_at is not None
    assert paid.case.due_at.astimezone(VN).date() == date(2019, 5, 8)
    assert paid.case.due_sort == paid.case.due_at and paid.case.next_check_at is not None
    assert [d.reason for d in paid.case.due_history] == ["payment"]


def _extended_then_supplemented(rules: Rules, supplement_back: datetime) -> Case:
    """Due Tue 7 May 2019; extended on Fri 3 May to Tue 14 May; a supplement asked on Mon 6 May
    comes back at `supplement_back`."""
    extend_at, ask_at = datetime(2019, 5, 3, 9, tzinfo=VN), datetime(2019, 5, 6, 9, tzinfo=VN)
    new_due = date(2019, 5, 14)
    extended = do(
        in_processing(),
        Action.EXTEND,
        extend_at,
        rules=rules,
        reason="Ý kiến",
        new_due_date=new_due,
    )
    asked = do(
        extended,
        Action.REQUEST_SUPPLEMENT,
        ask_at,
        rules=rules,
        reason="Thiếu",
        documents=("CCCD",),
    )
    return do(asked, Action.SUPPLEMENT_RECEIVED, supplement_back, rules=rules)


def test_restart_after_an_extension_never_moves_the_promised_date_earlier() -> None:
    # Restart from Mon 6 May 15:00: + 5 working days → Mon 13 May, before the promised Tue 14.
    back = _extended_then_supplemented(RULES, datetime(2019, 5, 6, 15, tzinfo=VN))
    assert back.due_at is not None and back.due_at.astimezone(VN).date() == date(2019, 5, 14)
    assert back.due_history[-1].reason == "supplement"
    # A supplement back later restarts past the promise: the fresh count wins.
    later = _extended_then_supplemented(RULES, datetime(2019, 5, 9, 9, tzinfo=VN))
    assert later.due_at is not None and later.due_at.astimezone(VN).date() == date(2019, 5, 16)


def test_resume_after_an_extension_moves_the_promised_date_by_the_stopped_days() -> None:
    resume = Rules(WorkingCalendar(), DeadlinePolicy(supplement_clock="resume"))
    # Stopped Mon 6 – Wed 8 May (three working days touched): Tue 14 May → Fri 17 May.
    back = _extended_then_supplemented(resume, datetime(2019, 5, 8, 9, tzinfo=VN))
    assert back.due_at is not None and back.due_at.astimezone(VN).date() == date(2019, 5, 17)


def test_a_paper_dossier_recorded_on_a_day_off_counts_from_the_next_working_morning() -> None:
    """Before or after 15:00 on a Saturday: the same t0, due date and hand-over (Mon 11 Mar)."""
    outcomes = [
        open_case(
            submitted().model_copy(
                update={
                    "channel": Channel.COUNTER,
                    "occurred_at": datetime(2019, 3, 9, h, tzinfo=VN),
                }
            ),
            procedure(cutoff_15h=True),
            RULES,
        ).case
        for h in (10, 16)
    ]
    monday = datetime(2019, 3, 11, 7, 30, tzinfo=VN)
    for case in outcomes:
        assert case.start_processing_at == monday and case.clock_started_at == monday
        assert case.due_at is not None and case.due_at.astimezone(VN).date() == date(2019, 3, 18)


def test_due_dates_in_a_year_without_an_official_calendar_are_reported() -> None:
    covered = in_processing()
    assert due_years_without_calendar(covered, RULES) == []
    far = arrived(Channel.COUNTER, datetime(2101, 3, 1, 10, tzinfo=VN))
    assert far.due_at is not None and far.due_at.year == 2101
    assert due_years_without_calendar(far, RULES) == [2101]
    assert due_years_without_calendar(far, RULES, since=len(far.due_history)) == []


# -- issue 13 item 4, issue 14 B: steps as the contract's enumeration; the requested amount -----


def test_every_step_is_announced_with_the_contracts_enumeration() -> None:
    case = in_processing()
    received = apply(
        arrived(Channel.ONLINE, datetime(2019, 4, 26, 9, tzinfo=VN)),
        Command(Action.RECEIVE, "o1", datetime(2019, 4, 26, 10, tzinfo=VN)),
        RULES,
    )
    late = scan(case, datetime(2019, 5, 8, 8, tzinfo=VN), RULES)
    for step in (*received.steps, *late.steps):
        assert type(step.action) is StepAction
    assert [s.action for s in late.steps] == [
        StepAction.DEADLINE_WARNING_50,
        StepAction.DEADLINE_WARNING_80,
        StepAction.OVERDUE,
    ]
    assert all(action.is_deadline_alert for action, _ in alert_schedule(case, RULES))


def test_warning_fractions_are_those_the_contract_names() -> None:
    assert Rules(WorkingCalendar(), warning_fractions=(0.8,)).warning_fractions == (0.8,)
    assert Rules(WorkingCalendar(), warning_fractions=()).warning_fractions == ()
    with pytest.raises(ValueError, match=r"\[0\.9\].*names 0\.5, 0\.8 only"):
        Rules(WorkingCalendar(), warning_fractions=(0.5, 0.9))
    with pytest.raises(ValueError, match="deadline_warning_50, deadline_warning_80"):
        ProcessingSettings(warning_fractions=[0.75])
    assert ProcessingSettings().warning_fractions == [0.5, 0.8]


def test_a_payment_request_announces_the_amount_asked() -> None:
    outcome = apply(
        in_processing(),
        Command(Action.REQUEST_PAYMENT, "o1", datetime.now(VN), amount_vnd=150_000),
        RULES,
    )
    [step] = outcome.steps
    assert step.action is StepAction.REQUEST_PAYMENT and step.amount_vnd == 150_000
    event = processed_event(outcome.case, step)
    assert event.action is StepAction.REQUEST_PAYMENT and event.amount_vnd == 150_000
    other = apply(outcome.case, Command(Action.ASSIGN, "o1", datetime.now(VN), assignee="c"), RULES)
    assert processed_event(other.case, other.steps[0]).amount_vnd is None


@pytest.mark.parametrize("paid", [149_999, 300_000, None])
def test_a_payment_of_another_amount_than_requested_is_refused(paid: int | None) -> None:
    asked = do(in_processing(), Action.REQUEST_PAYMENT, datetime.now(VN), amount_vnd=150_000)
    with pytest.raises(PaymentAmountMismatch) as refused:
        do(asked, Action.PAYMENT_RECEIVED, datetime.now(VN), amount_vnd=paid)
    assert refused.value.requested_vnd == 150_000
    assert "150,000" in str(refused.value) and "differs from the requested" in str(refused.value)
    assert asked.state == DossierState.PAYMENT_REQUESTED and asked.paid_at is None
    back = do(asked, Action.PAYMENT_RECEIVED, datetime.now(VN), amount_vnd=150_000)
    assert back.state == DossierState.IN_PROCESSING and back.paid_at is not None

"""What every action does to a case, with its deadlines: pure functions, no I/O.

Each function takes a `Case` and returns an `Outcome`: the changed case and the `Step`s to append
to its history and announce on `dvc.dossier.processed.v1`, one event per step, in order.

Deadline decisions (DOMAIN.md §4, engine in `deadlines.py`):

- t0 is when the dossier is accepted as complete and valid. Paper dossiers (counter, post) arrive
  received: t0 = `clock_start(occurred_at, online=False, cutoff_15h=<procedure>)` (R5). Online
  dossiers: t0 = `clock_start(<moment of the officer's receive action>, online=True)` (R6).
  Procedures with `fee_starts_clock` (and a fee) start the clock at payment instead (R6 applied to
  the payment instant; a payment before receipt counts from receipt) — whether the payment answers
  the unit's request (state 6, `payment_received`) or comes outside it (`record_payment`); either
  way a `clock_started` step announces the due date.
- 2 → 4: electronic dossiers move at once (a second step right after `receive`); paper dossiers
  at `start_processing_at` — the receipt instant, or the next working morning when received after
  15:00 or on a day off — done by the deadline scanner (or earlier by an officer).
- A supplement request in state 4 opens a pause (the due date is unknown while it is open, so
  `due_at` is None); the supplement closes it at the moment it arrived and the due date is
  recomputed by the engine (restart or resume, per `DeadlinePolicy`), never earlier than a date
  an extension (Form 04) promised before the supplement (`keep_extension`). Each new due date is
  kept.
- Due dates in a year the official calendar does not cover are reported by
  `due_years_without_calendar`, for the service to count and log (no I/O here).
- Warnings: at each fraction of the legal time (office time, `threshold_times`) and at the due
  date itself (`overdue`), at most once per case and threshold, even if the due date moves later.
  The fractions are those the contract names a step for (`DEADLINE_WARNING_FRACTIONS`: 0.5 and
  0.8); `Rules` refuses any other.
- Every step is announced with its `StepAction` (the contract's enumeration); a payment request
  carries its amount, and the payment answering it must be of that amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.case import (
    NO_DUE_DATE,
    Case,
    DueDateRecord,
    ExtensionRecord,
    HistoryEntry,
    PauseRecord,
)
from services.processing.domain.deadlines import (
    DeadlineError,
    DeadlinePolicy,
    Pause,
    check_extension,
    clock_start,
    counting_start,
    due_at,
    end_of_day,
    is_overdue,
    keep_extension,
    threshold_times,
)
from services.processing.domain.lifecycle import (
    ACTIVE,
    CLOCK_RUNNING,
    Action,
    next_state,
)
from shared.contracts.catalogue import Procedure
from shared.contracts.events import (
    DEADLINE_WARNING_FRACTIONS,
    Channel,
    DocumentRef,
    DossierState,
    DossierSubmitted,
    StepAction,
)

SYSTEM = "system"
_TICK = timedelta(milliseconds=1)  # MongoDB keeps milliseconds


class WorkflowError(ValueError):
    """A business rule refuses the action (besides the lifecycle); Vietnamese first."""


class PaymentAmountMismatch(WorkflowError):
    """The payment answering a payment request is not of the amount the unit asked."""

    def __init__(self, requested_vnd: int, paid_vnd: int) -> None:
        self.requested_vnd = requested_vnd
        self.paid_vnd = paid_vnd
        super().__init__(
            f"Số tiền đã nộp ({paid_vnd:,} đồng) khác số tiền đơn vị yêu cầu "
            f"({requested_vnd:,} đồng) (paid amount {paid_vnd} VND differs from the requested "
            f"{requested_vnd} VND)"
        )


def check_warning_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """`fractions` if the contract names a deadline warning for each (0.5, 0.8), else
    `ValueError` saying which it names."""
    named = sorted(DEADLINE_WARNING_FRACTIONS.values())
    unknown = [f for f in fractions if f not in named]
    if unknown:
        raise ValueError(
            f"warning fractions {unknown} have no deadline warning in the contract: "
            f"dvc.dossier.processed.v1 names {', '.join(str(f) for f in named)} only "
            f"({', '.join(a.value for a in DEADLINE_WARNING_FRACTIONS)})"
        )
    return tuple(fractions)


@dataclass(frozen=True)
class Rules:
    calendar: WorkingCalendar
    policy: DeadlinePolicy = field(default_factory=DeadlinePolicy)
    warning_fractions: tuple[float, ...] = (0.5, 0.8)

    def __post_init__(self) -> None:
        check_warning_fractions(self.warning_fractions)


@dataclass(frozen=True)
class Step:
    """One history entry and the event that announces it."""

    action: StepAction
    actor: str
    at: datetime
    from_state: DossierState | None
    to_state: DossierState
    note: str | None = None
    citizen_action: str | None = None
    requested_documents: tuple[str, ...] = ()
    result_document: DocumentRef | None = None
    amount_vnd: int | None = None  # request_payment: the amount asked
    actor_name: str | None = None  # the history's, not the event's


@dataclass(frozen=True)
class Outcome:
    case: Case
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Command:
    """An officer's action (or one derived from an applicant's event). Fields by action:

    reason — refuse_intake, refuse, request_supplement, extend, request_withdrawal;
    documents — request_supplement (codes or names of the documents asked for);
    amount_vnd — request_payment (the amount asked), payment_received (the amount paid);
    assignee (and the name to show, `assignee_name`) — assign; result_document — issue_result;
    return_method — return_result; new_due_date — extend.
    """

    action: Action
    actor: str
    at: datetime
    actor_name: str | None = None
    note: str | None = None
    reason: str | None = None
    documents: tuple[str, ...] = ()
    amount_vnd: int | None = None
    assignee: str | None = None
    assignee_name: str | None = None
    result_document: DocumentRef | None = None
    return_method: str | None = None
    new_due_date: date | None = None


# -- opening a case -----------------------------------------------------------------------------


def open_case(event: DossierSubmitted, procedure: Procedure, rules: Rules) -> Outcome:
    """A new case from a submitted dossier, routed to the procedure's lead unit."""
    case = Case(
        code=event.dossier_code,
        procedure_code=procedure.code,
        procedure_name=procedure.name,
        unit_code=procedure.unit_code,
        level=event.level,
        channel=event.channel,
        state=DossierState.SUBMITTED,
        applicant_name=event.applicant.name,
        fee_vnd=event.fee_vnd or procedure.total_fee_vnd,
        processing_time=procedure.processing_time,
        cutoff_15h=procedure.cutoff_15h,
        fee_starts_clock=procedure.fee_starts_clock,
        submitted_at=event.occurred_at,
    )
    if event.channel == Channel.ONLINE:
        return Outcome(refresh(case, rules), ())
    # Paper dossiers were received at the counter (or from the post) when intake recorded them.
    at = event.occurred_at
    case.state = DossierState.RECEIVED
    case.received_at = at
    case.start_processing_at = clock_start(
        at, online=False, cutoff_15h=True, calendar=rules.calendar, policy=rules.policy
    )
    _maybe_start_clock(case, rules, at)
    step = Step(
        StepAction.RECEIVE,
        SYSTEM,
        at,
        None,
        DossierState.RECEIVED,
        note="Tiếp nhận hồ sơ giấy (paper dossier received)",
    )
    return _finish(case, rules, [step])


# -- officer and applicant actions -----------------------------------------------------------------


def apply(case: Case, command: Command, rules: Rules) -> Outcome:
    """Apply an action to a copy of `case`; raises `TransitionError` or `WorkflowError`."""
    case = case.model_copy(deep=True)
    action, at = command.action, command.at
    source = case.state
    target = next_state(source, action)
    steps: list[Step] = []

    def step(**kwargs: object) -> None:
        steps.append(
            Step(
                action.step,
                command.actor,
                at,
                source,
                target,
                note=kwargs.pop("note", command.note),  # type: ignore[arg-type]
                actor_name=command.actor_name,
                **kwargs,  # type: ignore[arg-type]
            )
        )

    if action == Action.RECEIVE:
        case.received_at = at
        _maybe_start_clock(case, rules, at)
        case.state = target
        step(note=command.note)
        # Electronic dossiers go to processing at once (DOMAIN.md §3: 2 → 4).
        case.state = DossierState.IN_PROCESSING
        steps.append(
            Step(
                StepAction.START_PROCESSING,
                SYSTEM,
                at,
                DossierState.RECEIVED,
                DossierState.IN_PROCESSING,
                note="Hồ sơ điện tử chuyển xử lý ngay (electronic dossier)",
            )
        )
        return _finish(case, rules, steps)

    if action in (Action.REFUSE_INTAKE, Action.REFUSE):
        reason = _required(command.reason, "lý do (reason)")
        step(note=reason, citizen_action=_refusal_text(action, reason))
    elif action == Action.START_PROCESSING:
        case.start_processing_at = None
        step()
    elif action == Action.REQUEST_SUPPLEMENT:
        reason = _required(command.reason, "lý do (reason)")
        if not command.documents:
            raise WorkflowError(
                "Cần liệt kê giấy tờ phải bổ sung (list the documents to supplement)"
            )
        case.requested_documents = list(command.documents)
        if target == DossierState.SUPPLEMENT_REQUESTED:
            case.pauses.append(PauseRecord(started_at=at, reason=reason))
        step(
            note=reason,
            citizen_action="Bổ sung hồ sơ: " + "; ".join(command.documents) + f". Lý do: {reason}",
            requested_documents=tuple(command.documents),
        )
    elif action == Action.SUPPLEMENT_RECEIVED:
        case.requested_documents = []
        if source == DossierState.SUPPLEMENT_REQUESTED:
            for pause in case.pauses:
                if pause.ended_at is None:
                    pause.ended_at = max(at, pause.started_at)
        step()
    elif action == Action.REQUEST_PAYMENT:
        if not command.amount_vnd or command.amount_vnd <= 0:
            raise WorkflowError("Số tiền phải lớn hơn 0 (amount must be positive)")
        case.payment_amount_vnd = command.amount_vnd
        step(
            citizen_action=f"Thực hiện nghĩa vụ tài chính: nộp {command.amount_vnd:,} đồng",
            amount_vnd=command.amount_vnd,
        )
    elif action == Action.PAYMENT_RECEIVED:
        requested = case.payment_amount_vnd
        if requested is not None and command.amount_vnd != requested:
            raise PaymentAmountMismatch(requested, command.amount_vnd or 0)
        case.paid_at = case.paid_at or at
        step()
        steps.extend(_clock_started_by_payment(case, rules, at, target))
    elif action == Action.ISSUE_RESULT:
        if not case.approved:
            raise WorkflowError(
                "Hồ sơ chưa được lãnh đạo đơn vị phê duyệt (approve the dossier first)"
            )
        if command.result_document is None:
            raise WorkflowError("Thiếu văn bản kết quả (the result document is missing)")
        case.result_document = command.result_document
        step(citizen_action=_result_text(case), result_document=command.result_document)
    elif action == Action.RETURN_RESULT:
        case.return_method = command.return_method
        step()
    elif action == Action.REQUEST_WITHDRAWAL:
        step(note=command.reason or command.note)
    elif action == Action.CONFIRM_WITHDRAWAL:
        step()
    elif action == Action.ASSIGN:
        case.assignee = _required(command.assignee, "cán bộ được giao (assignee)")
        case.assignee_name = command.assignee_name
        step(note=command.note or f"Giao cho {case.assignee_name or case.assignee}")
    elif action == Action.APPROVE:
        case.approved = True
        step()
    elif action == Action.EXTEND:
        return _extend(case, command, rules)
    case.state = target
    return _finish(case, rules, steps)


def record_payment(case: Case, paid_at: datetime, rules: Rules) -> Outcome:
    """An online payment outside state 6: kept; it starts the clock of a `fee_starts_clock`
    procedure once the dossier is received. In state 6 use `apply(PAYMENT_RECEIVED)`."""
    case = case.model_copy(deep=True)
    case.paid_at = case.paid_at or paid_at
    return _finish(case, rules, _clock_started_by_payment(case, rules, paid_at, case.state))


def _clock_started_by_payment(
    case: Case, rules: Rules, paid_at: datetime, state: DossierState
) -> list[Step]:
    """The `clock_started` step when the payment starts the clock of a received dossier."""
    if case.received_at is None or not _maybe_start_clock(case, rules, paid_at):
        return []
    note = "Đã nộp phí: bắt đầu tính thời hạn (fee paid: the clock starts)"
    return [Step(StepAction.CLOCK_STARTED, SYSTEM, paid_at, state, state, note=note)]


def _extend(case: Case, command: Command, rules: Rules) -> Outcome:
    reason = _required(command.reason, "lý do gia hạn (reason)")
    if command.new_due_date is None:
        raise WorkflowError("Thiếu ngày hẹn trả mới (the new due date is missing)")
    if case.due_at is None:
        raise WorkflowError("Hồ sơ chưa có hạn xử lý để gia hạn (no due date in force)")
    new_due = end_of_day(command.new_due_date, rules.policy)
    try:
        check_extension(
            current_due=case.due_at,
            new_due=new_due,
            recorded_at=command.at,
            extensions_so_far=len(case.extensions),
            calendar=rules.calendar,
            policy=rules.policy,
        )
    except DeadlineError as exc:
        raise WorkflowError(str(exc)) from exc
    case.extensions.append(
        ExtensionRecord(
            recorded_at=command.at,
            actor=command.actor,
            reason=reason,
            previous_due_at=case.due_at,
            new_due_at=new_due,
        )
    )
    case.due_at = new_due
    case.due_history.append(DueDateRecord(due_at=new_due, set_at=command.at, reason="extension"))
    apology = (
        f"Xin lỗi vì chậm trả kết quả. Lý do: {reason}. "
        f"Ngày hẹn trả kết quả mới: {command.new_due_date:%d/%m/%Y} (Mẫu 04)"
    )
    step = Step(
        StepAction.EXTEND,
        command.actor,
        command.at,
        case.state,
        case.state,
        note=apology,
        citizen_action=f"Nhận kết quả vào ngày {command.new_due_date:%d/%m/%Y}",
        actor_name=command.actor_name,
    )
    return _finish(case, rules, [step])


# -- the deadline scanner -------------------------------------------------------------------------


def alert_schedule(case: Case, rules: Rules) -> list[tuple[StepAction, datetime]]:
    """(action, instant) of every warning and of overdue for the due date in force."""
    if case.due_at is None or case.clock_started_at is None or case.paused:
        return []
    pauses = [Pause(p.started_at, p.ended_at, p.reason) for p in case.pauses]
    start = counting_start(case.clock_started_at, pauses, rules.policy)
    schedule: list[tuple[StepAction, datetime]] = []
    if start < case.due_at:
        times = threshold_times(
            start,
            case.due_at,
            list(rules.warning_fractions),
            calendar=rules.calendar,
            policy=rules.policy,
        )
        schedule = [(StepAction.deadline_warning(f), moment) for f, moment in times]
    # Overdue once *past* the due instant.
    schedule.append((StepAction.OVERDUE, case.due_at + _TICK))
    return schedule


def scan(case: Case, now: datetime, rules: Rules) -> Outcome:
    """What time alone does to a case: a paper dossier moves 2 → 4, warnings and overdue fire."""
    case = case.model_copy(deep=True)
    steps: list[Step] = []
    if (
        case.state == DossierState.RECEIVED
        and case.start_processing_at is not None
        and case.start_processing_at <= now
    ):
        at = case.start_processing_at
        case.state = DossierState.IN_PROCESSING
        case.start_processing_at = None
        steps.append(
            Step(
                StepAction.START_PROCESSING,
                SYSTEM,
                at,
                DossierState.RECEIVED,
                DossierState.IN_PROCESSING,
                note="Chuyển hồ sơ giấy đến đơn vị xử lý (paper dossier handed to the unit)",
            )
        )
    if case.state in CLOCK_RUNNING:
        for action, moment in alert_schedule(case, rules):
            if action in case.warnings_emitted or moment > now:
                continue
            if action is StepAction.OVERDUE and not is_overdue(now, case.due_at or now):
                continue
            case.warnings_emitted.append(action.value)
            steps.append(
                Step(
                    action,
                    SYSTEM,
                    now,
                    case.state,
                    case.state,
                    note=_alert_note(action, case),
                )
            )
    return _finish(case, rules, steps)


def due_years_without_calendar(case: Case, rules: Rules, since: int = 0) -> list[int]:
    """Years of the due dates recorded from `case.due_history[since]` on that the official
    calendar does not cover: their holidays are unknown, so every weekday counted as working."""
    zone = ZoneInfo(rules.policy.timezone)
    years = {
        record.due_at.astimezone(zone).year
        for record in case.due_history[since:]
        if record.due_at is not None
    }
    return sorted(year for year in years if not rules.calendar.has_official_calendar(year))


# -- helpers -------------------------------------------------------------------------------------


def refresh(case: Case, rules: Rules) -> Case:
    """Recompute the derived fields used by the worklist and the scanner."""
    case.online_rank = 0 if case.online else 1
    case.due_sort = case.due_at or NO_DUE_DATE
    case.active = case.state in ACTIVE
    candidates: list[datetime] = []
    if case.state == DossierState.RECEIVED and case.start_processing_at is not None:
        candidates.append(case.start_processing_at)
    if case.state in CLOCK_RUNNING:
        candidates.extend(
            moment
            for action, moment in alert_schedule(case, rules)
            if action not in case.warnings_emitted
        )
    case.next_check_at = min(candidates) if candidates else None
    return case


def _finish(case: Case, rules: Rules, steps: Sequence[Step]) -> Outcome:
    if any(s.action is StepAction.SUPPLEMENT_RECEIVED for s in steps) and case.received_at:
        _recompute_due(case, rules, steps[-1].at, reason="supplement")
    elif case.paused:
        case.due_at = None
    for s in steps:
        case.history.append(
            HistoryEntry(
                at=s.at,
                action=s.action,
                actor=s.actor,
                actor_name=s.actor_name,
                unit_code=case.unit_code,
                from_state=s.from_state,
                to_state=s.to_state,
                note=s.note,
            )
        )
    return Outcome(refresh(case, rules), tuple(steps))


def _needs_payment(case: Case) -> bool:
    return case.fee_starts_clock and case.fee_vnd > 0 and case.paid_at is None


def _maybe_start_clock(case: Case, rules: Rules, at: datetime) -> bool:
    """Start the clock if it can start now; True when it started."""
    if case.clock_started_at is not None or _needs_payment(case):
        return False
    received = case.received_at or at
    if case.fee_starts_clock and case.paid_at is not None:
        moment, online, reason = max(received, case.paid_at), True, "payment"
    else:
        moment, online, reason = received, case.online, "receipt"
    case.clock_started_at = clock_start(
        moment,
        online=online,
        cutoff_15h=case.cutoff_15h,
        calendar=rules.calendar,
        policy=rules.policy,
    )
    _recompute_due(case, rules, at, reason=reason)
    return True


def _recompute_due(case: Case, rules: Rules, at: datetime, *, reason: str) -> None:
    if case.clock_started_at is None or case.processing_time is None or case.paused:
        case.due_at = None
        return
    pauses = [Pause(p.started_at, p.ended_at, p.reason) for p in case.pauses]
    case.due_at = due_at(
        case.clock_started_at,
        case.processing_time,
        calendar=rules.calendar,
        policy=rules.policy,
        pauses=pauses,
    )
    if case.extensions:  # Form 04: the promised date never moves earlier
        extension = case.extensions[-1]
        case.due_at = keep_extension(
            case.due_at,
            extended_due=extension.new_due_at,
            extended_at=extension.recorded_at,
            pauses=pauses,
            calendar=rules.calendar,
            policy=rules.policy,
        )
    case.due_history.append(DueDateRecord(due_at=case.due_at, set_at=at, reason=reason))


def _required(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise WorkflowError(f"Thiếu {what} (missing {what.split('(')[-1].rstrip(')')})")
    return value.strip()


def _refusal_text(action: Action, reason: str) -> str:
    if action == Action.REFUSE_INTAKE:
        return f"Hồ sơ không được tiếp nhận. Lý do: {reason}"
    return f"Hồ sơ bị từ chối giải quyết. Lý do: {reason}"


def _result_text(case: Case) -> str:
    if case.level >= 4:
        return "Nhận kết quả trực tuyến trên Cổng dịch vụ công"
    return "Đến Bộ phận Một cửa nhận kết quả, mang theo giấy tiếp nhận hồ sơ"


def _alert_note(action: StepAction, case: Case) -> str:
    due = f"{case.due_at:%d/%m/%Y %H:%M}" if case.due_at else "?"
    if action is StepAction.OVERDUE:
        return f"Hồ sơ đã quá hạn xử lý (hạn {due}) (overdue)"
    percent = round(DEADLINE_WARNING_FRACTIONS[action] * 100)
    return f"Đã dùng {percent}% thời gian giải quyết, hạn {due} (deadline warning)"

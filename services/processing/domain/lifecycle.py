"""The dossier lifecycle of DOMAIN.md §3 as a pure state machine (states = `DossierState`).

`TRANSITIONS` lists exactly the state changes the decree allows; every `Action` maps the states it
may start from to the state it leads to. A few actions are *steps* that keep the state (assign,
approve, extend, and an intake-level supplement request, "1 stays 1"): they are allowed only in
the states listed for them and never change the state, so they add nothing to `TRANSITIONS`.
Anything else raises `TransitionError` with a Vietnamese-first message.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from shared.contracts.events import DossierState as S
from shared.contracts.events import StepAction


class Action(StrEnum):
    """What an officer, the applicant (through intake's events) or the system does to a case.

    Each value is the `StepAction` the action is announced with (`shared.contracts.events`, the one
    source of the names); the steps only the system announces (clock started, deadline
    warnings, overdue) are `StepAction`s that are not `Action`s.
    """

    RECEIVE = StepAction.RECEIVE  # intake check passed: 1 → 2
    REFUSE_INTAKE = StepAction.REFUSE_INTAKE  # not received (with reason): 1 → 3
    START_PROCESSING = StepAction.START_PROCESSING  # 2 → 4
    REQUEST_SUPPLEMENT = StepAction.REQUEST_SUPPLEMENT  # 4 → 5 (clock stops); at intake 1 stays 1
    SUPPLEMENT_RECEIVED = StepAction.SUPPLEMENT_RECEIVED  # 5 → 4 (clock restarts/resumes)
    REQUEST_PAYMENT = StepAction.REQUEST_PAYMENT  # 4 → 6
    PAYMENT_RECEIVED = StepAction.PAYMENT_RECEIVED  # 6 → 4
    REFUSE = StepAction.REFUSE  # stopped / refused after appraisal: 4 → 8
    REQUEST_WITHDRAWAL = StepAction.REQUEST_WITHDRAWAL  # 1, 2, 4, 5, 6 → 7
    CONFIRM_WITHDRAWAL = StepAction.CONFIRM_WITHDRAWAL  # 7 → 8
    ISSUE_RESULT = StepAction.ISSUE_RESULT  # 4 → 9
    RETURN_RESULT = StepAction.RETURN_RESULT  # 9 → 10
    # Steps: recorded in the history and announced, the state stays.
    ASSIGN = StepAction.ASSIGN
    APPROVE = StepAction.APPROVE
    EXTEND = StepAction.EXTEND

    @property
    def step(self) -> StepAction:
        """The step this action is announced with on `dvc.dossier.processed.v1`."""
        return StepAction(self.value)


# Exactly the transitions of DOMAIN.md §3, including "1 stays 1" for an intake-level supplement.
TRANSITIONS: frozenset[tuple[S, S]] = frozenset(
    {
        (S.SUBMITTED, S.RECEIVED),
        (S.SUBMITTED, S.NOT_RECEIVED),
        (S.SUBMITTED, S.SUBMITTED),
        (S.RECEIVED, S.IN_PROCESSING),
        (S.IN_PROCESSING, S.SUPPLEMENT_REQUESTED),
        (S.SUPPLEMENT_REQUESTED, S.IN_PROCESSING),
        (S.IN_PROCESSING, S.PAYMENT_REQUESTED),
        (S.PAYMENT_REQUESTED, S.IN_PROCESSING),
        (S.IN_PROCESSING, S.STOPPED),
        (S.SUBMITTED, S.WITHDRAWAL_REQUESTED),
        (S.RECEIVED, S.WITHDRAWAL_REQUESTED),
        (S.IN_PROCESSING, S.WITHDRAWAL_REQUESTED),
        (S.SUPPLEMENT_REQUESTED, S.WITHDRAWAL_REQUESTED),
        (S.PAYMENT_REQUESTED, S.WITHDRAWAL_REQUESTED),
        (S.WITHDRAWAL_REQUESTED, S.STOPPED),
        (S.IN_PROCESSING, S.PROCESSED),
        (S.PROCESSED, S.RESULT_RETURNED),
    }
)

_OPEN = (
    S.SUBMITTED,
    S.RECEIVED,
    S.IN_PROCESSING,
    S.SUPPLEMENT_REQUESTED,
    S.PAYMENT_REQUESTED,
    S.WITHDRAWAL_REQUESTED,
    S.PROCESSED,
)

# action → {from state: to state}
ACTIONS: dict[Action, dict[S, S]] = {
    Action.RECEIVE: {S.SUBMITTED: S.RECEIVED},
    Action.REFUSE_INTAKE: {S.SUBMITTED: S.NOT_RECEIVED},
    Action.START_PROCESSING: {S.RECEIVED: S.IN_PROCESSING},
    Action.REQUEST_SUPPLEMENT: {
        S.SUBMITTED: S.SUBMITTED,
        S.IN_PROCESSING: S.SUPPLEMENT_REQUESTED,
    },
    Action.SUPPLEMENT_RECEIVED: {
        S.SUBMITTED: S.SUBMITTED,
        S.SUPPLEMENT_REQUESTED: S.IN_PROCESSING,
    },
    Action.REQUEST_PAYMENT: {S.IN_PROCESSING: S.PAYMENT_REQUESTED},
    Action.PAYMENT_RECEIVED: {S.PAYMENT_REQUESTED: S.IN_PROCESSING},
    Action.REFUSE: {S.IN_PROCESSING: S.STOPPED},
    Action.REQUEST_WITHDRAWAL: {
        state: S.WITHDRAWAL_REQUESTED
        for state in (
            S.SUBMITTED,
            S.RECEIVED,
            S.IN_PROCESSING,
            S.SUPPLEMENT_REQUESTED,
            S.PAYMENT_REQUESTED,
        )
    },
    Action.CONFIRM_WITHDRAWAL: {S.WITHDRAWAL_REQUESTED: S.STOPPED},
    Action.ISSUE_RESULT: {S.IN_PROCESSING: S.PROCESSED},
    Action.RETURN_RESULT: {S.PROCESSED: S.RESULT_RETURNED},
    Action.ASSIGN: {state: state for state in _OPEN},
    Action.APPROVE: {S.IN_PROCESSING: S.IN_PROCESSING},
    # Form 04 while the clock runs (the due date is known and can still be met).
    Action.EXTEND: {state: state for state in (S.RECEIVED, S.IN_PROCESSING, S.PAYMENT_REQUESTED)},
}

STEPS: frozenset[Action] = frozenset({Action.ASSIGN, Action.APPROVE, Action.EXTEND})

STATE_NAMES_VI: dict[S, str] = {
    S.SUBMITTED: "đã nộp trực tuyến, chờ tiếp nhận",
    S.RECEIVED: "đã tiếp nhận",
    S.NOT_RECEIVED: "không tiếp nhận",
    S.IN_PROCESSING: "đang xử lý",
    S.SUPPLEMENT_REQUESTED: "yêu cầu bổ sung",
    S.PAYMENT_REQUESTED: "yêu cầu thực hiện nghĩa vụ tài chính",
    S.WITHDRAWAL_REQUESTED: "công dân xin rút hồ sơ",
    S.STOPPED: "dừng xử lý / từ chối",
    S.PROCESSED: "đã có kết quả",
    S.RESULT_RETURNED: "đã trả kết quả",
}

# Overdue is derived (DOMAIN.md §3): past the due date and not 8, 9 or 10. The clock also does not
# run before receipt (1), after a refusal at intake (3) or while a supplement is awaited (5).
CLOCK_RUNNING: frozenset[S] = frozenset(
    {S.RECEIVED, S.IN_PROCESSING, S.PAYMENT_REQUESTED, S.WITHDRAWAL_REQUESTED}
)
# On an officer's worklist: everything not finished.
ACTIVE: frozenset[S] = frozenset(_OPEN)


def overdue(state: S | int, due_at: datetime | None, now: datetime) -> bool:
    """Past the due date in force while the clock runs (what the officers' views show)."""
    return due_at is not None and S(state) in CLOCK_RUNNING and now > due_at


class TransitionError(ValueError):
    """The lifecycle forbids this action in this state; the message is Vietnamese first."""

    def __init__(self, action: Action, state: S) -> None:
        self.action = action
        self.state = state
        allowed = ", ".join(a.value for a in allowed_actions(state)) or "không có (none)"
        super().__init__(
            f"Không thể thực hiện '{action.value}' khi hồ sơ ở trạng thái {int(state)} "
            f"({STATE_NAMES_VI[state]}); thao tác được phép: {allowed} "
            f"(action '{action.value}' is not allowed in state {int(state)} {state.name})"
        )


def is_transition_allowed(source: S, target: S) -> bool:
    """True when DOMAIN.md §3 lists `source → target`."""
    return (source, target) in TRANSITIONS


def next_state(state: S, action: Action) -> S:
    """The state `action` leads to from `state`, or `TransitionError`."""
    target = ACTIONS[action].get(S(state))
    if target is None:
        raise TransitionError(action, S(state))
    return target


def allowed_actions(state: S) -> list[Action]:
    """The actions the lifecycle allows in `state`, in declaration order."""
    return [action for action, moves in ACTIONS.items() if S(state) in moves]

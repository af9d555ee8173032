"""Who may do what to a case: the role × unit × action matrix, as a pure function.

Officers and unit heads act only on the dossiers of their own unit; administrators on any unit.
Deciding steps (assigning work, approving or refusing after appraisal, extending the due date with
an apology) are the unit head's. Counter officers work in intake, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from services.processing.domain.lifecycle import Action
from shared.runtime.auth import Role

VIEW = "view"

_OFFICER_ACTIONS = frozenset(
    {
        VIEW,
        Action.RECEIVE,
        Action.REFUSE_INTAKE,
        Action.START_PROCESSING,
        Action.REQUEST_SUPPLEMENT,
        Action.REQUEST_PAYMENT,
        Action.ISSUE_RESULT,
        Action.RETURN_RESULT,
        Action.CONFIRM_WITHDRAWAL,
    }
)
_HEAD_ONLY = frozenset({Action.ASSIGN, Action.APPROVE, Action.REFUSE, Action.EXTEND})

ROLE_ACTIONS: dict[Role, frozenset[str]] = {
    Role.officer: _OFFICER_ACTIONS,
    Role.unit_head: _OFFICER_ACTIONS | _HEAD_ONLY,
    Role.admin: _OFFICER_ACTIONS | _HEAD_ONLY,
    Role.counter_officer: frozenset(),
    Role.result_reader: frozenset(),  # intake's credential: result downloads only (api/results)
}

# Actions only the applicant (through intake's events) or the system take; never over HTTP.
NOT_FOR_STAFF = frozenset(
    {Action.SUPPLEMENT_RECEIVED, Action.PAYMENT_RECEIVED, Action.REQUEST_WITHDRAWAL}
)


class Refusal(StrEnum):
    ROLE = "role"
    UNIT = "unit"


def refusal(
    roles: Iterable[Role | str], staff_unit: str | None, case_unit: str, action: str
) -> Refusal | None:
    """Why staff with `roles` in `staff_unit` may not take `action` on a case of `case_unit`
    (None when they may)."""
    held = {Role(r) for r in roles}
    if not any(action in ROLE_ACTIONS.get(role, frozenset()) for role in held):
        return Refusal.ROLE
    if Role.admin in held:
        return None
    if staff_unit is None or staff_unit != case_unit:
        return Refusal.UNIT
    return None


REFUSAL_MESSAGES = {
    Refusal.ROLE: "Vai trò của bạn không được thực hiện thao tác này "
    "(your role may not take this action)",
    Refusal.UNIT: "Hồ sơ thuộc đơn vị khác (this dossier belongs to another unit)",
}

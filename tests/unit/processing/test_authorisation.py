"""Who may do what: the role × unit × action matrix."""

from __future__ import annotations

import itertools

import pytest

from services.processing.domain.authorisation import VIEW, Refusal, refusal
from services.processing.domain.lifecycle import Action
from shared.runtime.auth import Role

STAFF_ACTIONS = [
    VIEW,
    *(
        a.value
        for a in Action
        if a not in (Action.SUPPLEMENT_RECEIVED, Action.PAYMENT_RECEIVED, Action.REQUEST_WITHDRAWAL)
    ),
]
HEAD_ONLY = {"assign", "approve", "refuse", "extend"}
APPLICANT_ONLY = ["supplement_received", "payment_received", "request_withdrawal"]


def expected(role: Role, same_unit: bool, action: str) -> Refusal | None:
    if role in (Role.counter_officer, Role.result_reader):  # no case work for these roles
        return Refusal.ROLE
    if role == Role.officer and action in HEAD_ONLY:
        return Refusal.ROLE
    if role == Role.admin:
        return None
    return None if same_unit else Refusal.UNIT


@pytest.mark.parametrize(
    ("role", "same_unit", "action"),
    list(itertools.product(Role, [True, False], STAFF_ACTIONS)),
)
def test_matrix(role: Role, same_unit: bool, action: str) -> None:
    staff_unit = "G12" if same_unit else "G15"
    assert refusal([role], staff_unit, "G12", action) == expected(role, same_unit, action)


@pytest.mark.parametrize(("role", "action"), list(itertools.product(Role, APPLICANT_ONLY)))
def test_applicant_steps_are_not_for_staff(role: Role, action: str) -> None:
    assert refusal([role], "G12", "G12", action) == Refusal.ROLE


def test_staff_without_a_unit_acts_on_no_unit() -> None:
    assert refusal([Role.officer], None, "G12", "receive") == Refusal.UNIT


def test_any_held_role_that_allows_the_action_is_enough() -> None:
    assert refusal([Role.counter_officer, Role.unit_head], "G12", "G12", "approve") is None
    assert refusal([Role.officer, Role.admin], None, "G12", "extend") is None

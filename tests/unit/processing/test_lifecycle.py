"""The lifecycle of DOMAIN.md §3: every allowed and every forbidden transition."""

from __future__ import annotations

import itertools

import pytest

from services.processing.domain.lifecycle import (
    ACTIONS,
    STEPS,
    TRANSITIONS,
    Action,
    TransitionError,
    allowed_actions,
    is_transition_allowed,
    next_state,
)
from shared.contracts.events import DossierState as S

# DOMAIN.md §3, written out again by hand so that a change to the table is a visible decision.
DOMAIN_TRANSITIONS = {
    (1, 2),
    (1, 3),
    (1, 1),
    (2, 4),
    (4, 5),
    (5, 4),
    (4, 6),
    (6, 4),
    (4, 8),
    (1, 7),
    (2, 7),
    (4, 7),
    (5, 7),
    (6, 7),
    (7, 8),
    (4, 9),
    (9, 10),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_the_full_state_matrix(source: S, target: S) -> None:
    assert is_transition_allowed(source, target) == ((source, target) in DOMAIN_TRANSITIONS)


def test_the_table_is_the_domain_table() -> None:
    assert {(int(a), int(b)) for a, b in TRANSITIONS} == DOMAIN_TRANSITIONS


@pytest.mark.parametrize(("action", "state"), list(itertools.product(Action, S)))
def test_every_action_in_every_state(action: Action, state: S) -> None:
    moves = ACTIONS[action]
    if state in moves:
        target = next_state(state, action)
        if action in STEPS:
            assert target == state  # steps never change the state
        else:
            assert is_transition_allowed(state, target)
        assert action in allowed_actions(state)
    else:
        with pytest.raises(TransitionError) as error:
            next_state(state, action)
        assert "Không thể thực hiện" in str(error.value)  # Vietnamese first
        assert action not in allowed_actions(state)


def test_every_domain_transition_is_reachable_by_some_action() -> None:
    reachable = {
        (int(source), int(target))
        for action, moves in ACTIONS.items()
        if action not in STEPS
        for source, target in moves.items()
    }
    assert reachable == DOMAIN_TRANSITIONS


@pytest.mark.parametrize(
    ("state", "action", "target"),
    [
        (S.SUBMITTED, Action.RECEIVE, S.RECEIVED),
        (S.SUBMITTED, Action.REFUSE_INTAKE, S.NOT_RECEIVED),
        (S.SUBMITTED, Action.REQUEST_SUPPLEMENT, S.SUBMITTED),
        (S.IN_PROCESSING, Action.REQUEST_SUPPLEMENT, S.SUPPLEMENT_REQUESTED),
        (S.SUPPLEMENT_REQUESTED, Action.SUPPLEMENT_RECEIVED, S.IN_PROCESSING),
        (S.PAYMENT_REQUESTED, Action.PAYMENT_RECEIVED, S.IN_PROCESSING),
        (S.PAYMENT_REQUESTED, Action.REQUEST_WITHDRAWAL, S.WITHDRAWAL_REQUESTED),
        (S.WITHDRAWAL_REQUESTED, Action.CONFIRM_WITHDRAWAL, S.STOPPED),
        (S.IN_PROCESSING, Action.ISSUE_RESULT, S.PROCESSED),
        (S.PROCESSED, Action.RETURN_RESULT, S.RESULT_RETURNED),
    ],
)
def test_named_moves(state: S, action: Action, target: S) -> None:
    assert next_state(state, action) == target


def test_finished_dossiers_allow_nothing() -> None:
    for state in (S.NOT_RECEIVED, S.STOPPED, S.RESULT_RETURNED):
        assert allowed_actions(state) == []

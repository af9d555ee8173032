"""Which processing steps send the citizen a message, and which one."""

from __future__ import annotations

import pytest

from services.notification.citizens.domain.mapping import MessageKind, kind_for_step, template_name
from shared.contracts.events import DossierState as S
from shared.contracts.events import StepAction


@pytest.mark.parametrize(
    ("action", "state", "previous", "expected"),
    [
        ("receive", S.RECEIVED, S.SUBMITTED, MessageKind.RECEIVED),
        ("receive", S.IN_PROCESSING, S.SUBMITTED, MessageKind.RECEIVED),
        ("refuse_intake", S.NOT_RECEIVED, S.SUBMITTED, MessageKind.NOT_RECEIVED),
        (
            "request_supplement",
            S.SUPPLEMENT_REQUESTED,
            S.IN_PROCESSING,
            MessageKind.SUPPLEMENT_REQUESTED,
        ),
        ("request_supplement", S.SUBMITTED, S.SUBMITTED, MessageKind.SUPPLEMENT_REQUESTED),
        ("request_payment", S.PAYMENT_REQUESTED, S.IN_PROCESSING, MessageKind.PAYMENT_REQUESTED),
        ("refuse", S.STOPPED, S.IN_PROCESSING, MessageKind.REFUSED),
        ("confirm_withdrawal", S.STOPPED, S.WITHDRAWAL_REQUESTED, MessageKind.WITHDRAWN),
        ("issue_result", S.PROCESSED, S.IN_PROCESSING, MessageKind.RESULT_ISSUED),
        ("return_result", S.RESULT_RETURNED, S.PROCESSED, MessageKind.RESULT_RETURNED),
        ("extend", S.IN_PROCESSING, S.IN_PROCESSING, MessageKind.EXTENSION_APOLOGY),
        ("overdue", S.IN_PROCESSING, None, MessageKind.OVERDUE_APOLOGY),
        ("overdue", S.SUPPLEMENT_REQUESTED, None, MessageKind.OVERDUE_APOLOGY),
    ],
)
def test_citizen_steps_send_their_message(
    action: str, state: S, previous: S | None, expected: MessageKind
) -> None:
    assert kind_for_step(action, state, previous) == expected


@pytest.mark.parametrize(
    ("action", "state", "previous"),
    [
        ("deadline_warning_50", S.IN_PROCESSING, None),
        ("deadline_warning_80", S.SUPPLEMENT_REQUESTED, None),
        ("assign", S.IN_PROCESSING, S.RECEIVED),
        ("start_processing", S.IN_PROCESSING, S.RECEIVED),  # 2 -> 4: the citizen was told at 2
        ("supplement_received", S.IN_PROCESSING, S.SUPPLEMENT_REQUESTED),
        ("payment_received", S.IN_PROCESSING, S.PAYMENT_REQUESTED),
        ("approve", S.IN_PROCESSING, S.IN_PROCESSING),
        ("clock_started", S.RECEIVED, S.RECEIVED),
        ("request_withdrawal", S.WITHDRAWAL_REQUESTED, S.IN_PROCESSING),
    ],
)
def test_internal_steps_send_nothing(action: str, state: S, previous: S | None) -> None:
    assert kind_for_step(action, state, previous) is None


def test_a_warning_is_internal_even_in_a_citizen_state() -> None:
    assert kind_for_step("deadline_warning_80", S.PAYMENT_REQUESTED) is None


@pytest.mark.parametrize("action", ["extend_with_apology", "start", "warning"])
def test_the_mapping_knows_the_contract_steps_only(action: str) -> None:
    """No more guessing from parts of the name (issue 13 item 4): a step is a `StepAction`."""
    with pytest.raises(ValueError):
        kind_for_step(action, S.IN_PROCESSING, None)  # type: ignore[arg-type]


def test_every_step_is_either_internal_or_mapped_by_a_rule() -> None:
    """Each deadline warning is silent in every state; overdue always apologises."""
    for action in StepAction:
        for state in S:
            kind = kind_for_step(action, state, None)
            if action.is_deadline_warning:
                assert kind is None
            elif action is StepAction.OVERDUE:
                assert kind is MessageKind.OVERDUE_APOLOGY


def test_templates_are_versioned() -> None:
    assert template_name(MessageKind.RECEIPT) == "receipt.v1"

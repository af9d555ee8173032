"""The steps of `dvc.dossier.processed.v1` and of the public stream are enumerations (issue 13
item 4) with the same strings on the wire as before; a payment request carries its amount (issue
14 B)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.processing.domain.lifecycle import Action
from shared.contracts.events import (
    DEADLINE_WARNING_FRACTIONS,
    DossierProcessed,
    PublicDossierStatus,
    PublicStep,
    StepAction,
)
from shared.tools.snapshots import schema_of, snapshot_path

CODE = "000.00.21.G12-261129-0001"


def processed(**changes: object) -> DossierProcessed:
    fields: dict[str, object] = {
        "dossier_code": CODE,
        "occurred_at": datetime(2026, 11, 29, 9, tzinfo=UTC),
        "procedure_code": "1.004473",
        "unit_code": "G12",
        "action": "receive",
        "state": 2,
    }
    return DossierProcessed.model_validate({**fields, **changes})


def test_processing_actions_take_their_values_from_the_contract() -> None:
    assert {a.value for a in Action} < {s.value for s in StepAction}
    for action in Action:
        assert action.step is StepAction[action.name] and action == action.step
    # The steps only the system announces.
    assert {s for s in StepAction if s.value not in set(Action)} == {
        StepAction.CLOCK_STARTED,
        StepAction.DEADLINE_WARNING_50,
        StepAction.DEADLINE_WARNING_80,
        StepAction.OVERDUE,
    }


def test_the_public_steps_are_submit_and_every_public_processing_step() -> None:
    public = {s.value for s in StepAction if s.is_public}
    assert {p.value for p in PublicStep} == {"submit"} | public
    assert PublicStep.of(StepAction.OVERDUE) is PublicStep.OVERDUE
    with pytest.raises(ValueError, match="internal"):
        PublicStep.of(StepAction.DEADLINE_WARNING_50)


def test_the_predicates_name_the_deadline_steps() -> None:
    warnings = {s for s in StepAction if s.is_deadline_warning}
    alerts = {s for s in StepAction if s.is_deadline_alert}
    assert warnings == {StepAction.DEADLINE_WARNING_50, StepAction.DEADLINE_WARNING_80}
    assert alerts == warnings | {StepAction.OVERDUE}
    assert {s for s in StepAction if not s.is_public} == warnings


def test_a_warning_exists_for_the_named_fractions_only() -> None:
    assert StepAction.deadline_warning(0.5) is StepAction.DEADLINE_WARNING_50
    assert StepAction.deadline_warning(0.8) is StepAction.DEADLINE_WARNING_80
    assert sorted(DEADLINE_WARNING_FRACTIONS.values()) == [0.5, 0.8]
    with pytest.raises(ValueError, match=r"0\.5, 0\.8"):
        StepAction.deadline_warning(0.9)


@pytest.mark.parametrize("value", [s.value for s in StepAction])
def test_the_wire_keeps_the_same_strings(value: str) -> None:
    event = processed(action=value)
    assert event.action is StepAction(value)
    assert json.loads(event.model_dump_json())["action"] == value


@pytest.mark.parametrize("value", ["warning", "deadline_warning_90", "Receive", "payment_recorded"])
def test_a_step_outside_the_contract_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        processed(action=value)


def test_the_processed_schema_enumerates_the_steps() -> None:
    schema = json.loads(snapshot_path(DossierProcessed).read_text())
    assert schema["properties"]["action"] == {
        "$ref": "#/$defs/StepAction",
        "description": "What happened: the step of the workflow",
    }
    assert schema["$defs"]["StepAction"]["enum"] == [s.value for s in StepAction]


def test_the_public_schema_lists_the_steps_as_an_extensible_enumeration() -> None:
    action = schema_of(PublicDossierStatus)["properties"]["action"]
    assert action["type"] == "string" and "enum" not in action
    assert action["x-extensible-enum"] == [p.value for p in PublicStep]


def test_a_payment_request_carries_its_amount_and_older_events_still_read() -> None:
    asked = processed(action="request_payment", state=6, amount_vnd=150_000)
    assert json.loads(asked.model_dump_json())["amount_vnd"] == 150_000
    older = json.loads(processed(action="request_payment", state=6).model_dump_json())
    del older["amount_vnd"]
    assert DossierProcessed.model_validate(older).amount_vnd is None
    with pytest.raises(ValidationError):
        processed(action="request_payment", state=6, amount_vnd=0)

"""The public contracts stay backward compatible within a topic version (shared/tools/compat.py).

If `test_public_topic_is_compatible_with_its_published_baseline` fails, the change to the model
breaks other agencies' consumers: make it additive, or publish it on a new `.vN` topic. If
`test_published_baseline_is_up_to_date` fails, run `.venv/bin/python -m shared.tools.compat
--publish`.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from shared.contracts.events import Channel, DossierEvent, DossierState, PublicDossierStatus
from shared.contracts.topics import PUBLIC_DOSSIER_STATUS_TOPIC, PUBLIC_TOPICS
from shared.tools.compat import (
    BreakingChange,
    baseline_path,
    breaking_changes,
    breaking_message,
    current_schemas,
    load_baseline,
    main,
    publish_baselines,
)
from shared.tools.snapshots import render


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization")


def paths(changes: list[BreakingChange]) -> set[str]:
    return {change.path for change in changes}


# --- the checker on synthetic models ----------------------------------------------------------


class Kind(StrEnum):
    A = "a"
    B = "b"


class KindWithoutB(StrEnum):
    A = "a"


class KindWithC(StrEnum):
    A = "a"
    B = "b"
    C = "c"


class Inner(BaseModel):
    amount: int


class Base(BaseModel):
    code: str
    count: int
    label: str | None = None
    kind: Kind
    inner: Inner
    lines: list[Inner] = Field(default_factory=list)


class RemovedField(BaseModel):
    code: str
    label: str | None = None
    kind: Kind
    inner: Inner
    lines: list[Inner] = Field(default_factory=list)


class StrToInt(Base):
    code: int  # type: ignore[assignment]


class IntToStr(Base):
    count: str  # type: ignore[assignment]


class NullableToNonNull(Base):
    label: str = ""  # type: ignore[assignment]


class NonNullToNullable(Base):
    count: int | None  # type: ignore[assignment]


class NewRequired(Base):
    reason: str


class BecameRequired(Base):
    label: str | None  # type: ignore[assignment]


class EnumValueRemoved(Base):
    kind: KindWithoutB  # type: ignore[assignment]


class InnerAsText(BaseModel):
    amount: str


class NestedRetyped(Base):
    inner: InnerAsText  # type: ignore[assignment]


class ListItemRetyped(Base):
    lines: list[InnerAsText] = Field(default_factory=list)  # type: ignore[assignment]


class Constrained(Base):
    count: int = Field(ge=0)


class NewOptional(Base):
    note: str | None = Field(default=None, description="A new optional field")


class EnumValueAdded(Base):
    kind: KindWithC  # type: ignore[assignment]


class Redescribed(Base):
    """Only annotations differ."""

    code: str = Field(title="The code", description="Now documented", examples=["X-1"])


@pytest.mark.parametrize(
    ("variant", "path", "words"),
    [
        (RemovedField, "$.count", "removed"),
        (StrToInt, "$.code", "type changed"),
        (IntToStr, "$.count", "type changed"),
        (NullableToNonNull, "$.label", "no longer nullable"),
        (NonNullToNullable, "$.count", "became nullable"),
        (NewRequired, "$.reason", "new required property"),
        (BecameRequired, "$.label", "became required"),
        (EnumValueRemoved, "$.kind", 'enumeration value(s) removed: ["b"]'),
        (NestedRetyped, "$.inner.amount", "type changed"),
        (ListItemRetyped, "$.lines[].amount", "type changed"),
        (Constrained, "$.count", "minimum changed"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_breaking_change_is_caught_with_its_path(
    variant: type[BaseModel], path: str, words: str
) -> None:
    changes = breaking_changes(schema(Base), schema(variant))
    assert any(c.path == path and words in c.reason for c in changes), changes


@pytest.mark.parametrize("variant", [Base, NewOptional, EnumValueAdded, Redescribed])
def test_compatible_change_is_accepted(variant: type[BaseModel]) -> None:
    assert breaking_changes(schema(Base), schema(variant)) == []


def test_removing_an_optional_field_again_is_breaking() -> None:
    assert paths(breaking_changes(schema(NewOptional), schema(Base))) == {"$.note"}


def test_refs_resolve_through_differently_named_definitions() -> None:
    old = {
        "type": "object",
        "properties": {"state": {"$ref": "#/$defs/State"}},
        "required": ["state"],
        "$defs": {"State": {"type": "integer", "enum": [1, 2]}},
    }
    same = {
        "type": "object",
        "properties": {"state": {"$ref": "#/components/schemas/DossierState"}},
        "required": ["state"],
        "components": {"schemas": {"DossierState": {"type": "integer", "enum": [1, 2, 3]}}},
    }
    retyped = {**same, "components": {"schemas": {"DossierState": {"type": "string"}}}}
    assert breaking_changes(old, same) == []
    assert paths(breaking_changes(old, retyped)) == {"$.state"}


def test_recursive_models_terminate() -> None:
    class Node(BaseModel):
        value: int
        children: list[Node] = Field(default_factory=list)

    class TextNode(BaseModel):
        value: str
        children: list[TextNode] = Field(default_factory=list)

    assert breaking_changes(schema(Node), schema(Node)) == []
    assert "$.value" in paths(breaking_changes(schema(Node), schema(TextNode)))


# --- the real public contracts against their published baselines ------------------------------


@pytest.mark.parametrize("topic", PUBLIC_TOPICS)
def test_public_topic_is_compatible_with_its_published_baseline(topic: str) -> None:
    baseline = load_baseline(topic)
    if baseline is None:
        pytest.skip(f"{topic} has no baseline yet (a new topic version): see the next test")
    changes = breaking_changes(baseline, current_schemas()[topic])
    assert not changes, breaking_message(topic, changes)


@pytest.mark.parametrize("topic", PUBLIC_TOPICS)
def test_published_baseline_is_up_to_date(topic: str) -> None:
    path = baseline_path(topic)
    assert path.exists() and path.read_text() == render(current_schemas()[topic]), (
        f"the published baseline {path.name} differs from the code: run "
        "`.venv/bin/python -m shared.tools.compat --publish` (it refuses breaking changes) "
        "and commit it"
    )


class StatusWithoutUnit(DossierEvent):
    procedure_code: str
    state: DossierState
    action: str
    channel: Channel | None = None
    due_at: datetime | None = None


class StatusWithTextState(PublicDossierStatus):
    state: str  # type: ignore[assignment]


class StatusWithRequiredReason(PublicDossierStatus):
    reason: str


class StatusWithRequiredChannel(PublicDossierStatus):
    channel: Channel  # type: ignore[assignment]


class StatusWithOptionalOutcome(PublicDossierStatus):
    outcome: str | None = None


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (StatusWithoutUnit, {"$.unit_code"}),
        (StatusWithTextState, {"$.state"}),
        (StatusWithRequiredReason, {"$.reason"}),
        (StatusWithRequiredChannel, {"$.channel"}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_breaking_change_to_public_dossier_status_is_caught_against_the_real_baseline(
    variant: type[BaseModel], expected: set[str]
) -> None:
    baseline = load_baseline(PUBLIC_DOSSIER_STATUS_TOPIC)
    assert baseline is not None
    changes = breaking_changes(baseline, schema(variant))
    assert paths(changes) == expected, changes
    message = breaking_message(PUBLIC_DOSSIER_STATUS_TOPIC, changes)
    assert "dvc.public.dossier-status.v2" in message


def test_additive_change_to_public_dossier_status_passes_against_the_real_baseline() -> None:
    baseline = load_baseline(PUBLIC_DOSSIER_STATUS_TOPIC)
    assert baseline is not None
    assert breaking_changes(baseline, schema(StatusWithOptionalOutcome)) == []


# --- publishing baselines ----------------------------------------------------------------------


def test_publish_writes_missing_refreshes_compatible_and_refuses_breaking(tmp_path: Path) -> None:
    v2 = "dvc.public.dossier-status.v2"
    done, refused = publish_baselines({v2: schema(PublicDossierStatus)}, tmp_path)
    assert refused == [] and baseline_path(v2, tmp_path).exists(), done

    done, refused = publish_baselines({v2: schema(StatusWithOptionalOutcome)}, tmp_path)
    assert refused == [] and len(done) == 1
    assert "outcome" in json.loads(baseline_path(v2, tmp_path).read_text())["properties"]

    before = baseline_path(v2, tmp_path).read_text()
    done, refused = publish_baselines({v2: schema(PublicDossierStatus)}, tmp_path)  # drops it
    assert done == [] and len(refused) == 1 and "$.outcome: property removed" in refused[0]
    assert baseline_path(v2, tmp_path).read_text() == before


def test_check_command_exits_1_on_a_breaking_change(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "shared.tools.compat.current_schemas",
        lambda: {PUBLIC_DOSSIER_STATUS_TOPIC: schema(StatusWithoutUnit)},
    )
    assert main([]) == 1
    assert "$.unit_code: property removed" in capsys.readouterr().err

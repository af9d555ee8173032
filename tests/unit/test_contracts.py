"""The event contracts are public: a change to them must be deliberate and reviewed.

If a test here fails after you changed `shared/contracts/events.py` on purpose, check the change is
additive (or make a `.v2` topic), then run `python -m shared.tools.snapshots` and commit the new
snapshots.
"""

import json

import pytest

from shared.contracts.events import EVENT_MODELS, DossierEvent
from shared.tools.snapshots import CONTRACT_MODELS, render, schema_of, snapshot_path


@pytest.mark.parametrize("model", CONTRACT_MODELS, ids=lambda m: m.event_type)
def test_schema_matches_its_reviewed_snapshot(model: type) -> None:
    path = snapshot_path(model)
    assert path.exists(), (
        f"no snapshot for {model.event_type}: run python -m shared.tools.snapshots"
    )
    assert render(schema_of(model)) == path.read_text(), (
        f"{model.__name__} changed without its snapshot {path.name}: review, then "
        "run python -m shared.tools.snapshots"
    )


@pytest.mark.parametrize("model", EVENT_MODELS, ids=lambda m: m.event_type)
def test_every_event_names_a_versioned_topic_and_type(model: type[DossierEvent]) -> None:
    assert model.topic.startswith("dvc.") and model.topic.rsplit(".", 1)[-1].startswith("v")
    assert model.event_type.endswith(model.topic.removeprefix("dvc"))
    schema = json.loads(snapshot_path(model).read_text())
    assert {"dossier_code", "occurred_at"} <= set(schema["required"])

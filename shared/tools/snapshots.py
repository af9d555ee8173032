"""JSON Schema snapshots of the public contracts (dossier events, catalogue records), kept in
`contracts/events/`.

`python -m shared.tools.snapshots` rewrites the snapshots after a reviewed change; the test suite
fails
while the code and the snapshots disagree, so no contract changes by accident.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shared.contracts.catalogue import Procedure
from shared.contracts.events import EVENT_MODELS, DossierEvent
from shared.contracts.topics import PUBLIC_TOPICS

CONTRACT_MODELS: tuple[type[DossierEvent | Procedure], ...] = (*EVENT_MODELS, Procedure)

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "contracts" / "events"


def public_models() -> dict[str, type[DossierEvent | Procedure]]:
    """The contract model of every topic other agencies may read (`PUBLIC_TOPICS`), by topic."""
    by_topic = {model.topic: model for model in CONTRACT_MODELS}
    missing = [topic for topic in PUBLIC_TOPICS if topic not in by_topic]
    if missing:
        raise LookupError(f"no contract model for public topic(s) {', '.join(missing)}")
    return {topic: by_topic[topic] for topic in PUBLIC_TOPICS}


def schema_of(model: type[DossierEvent | Procedure]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    schema["$id"] = f"urn:{model.event_type}"
    schema["x-topic"] = model.topic
    return schema


def snapshot_path(model: type[DossierEvent | Procedure]) -> Path:
    return SNAPSHOT_DIR / f"{model.event_type}.schema.json"


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_snapshots() -> list[Path]:
    SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for model in CONTRACT_MODELS:
        path = snapshot_path(model)
        path.write_text(render(schema_of(model)))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_snapshots():
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    sys.exit(0)

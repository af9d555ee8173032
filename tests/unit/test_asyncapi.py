"""The AsyncAPI contract of the public topics (shared/tools/asyncapi.py, contracts/asyncapi.yaml).

If `test_checked_in_document_is_up_to_date` fails, run `.venv/bin/python -m shared.tools.asyncapi`,
review the diff and commit it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from fastapi import FastAPI

import shared.tools.asyncapi as asyncapi
from shared.contracts.cloudevents import wrap
from shared.contracts.events import Applicant, Contact, DossierSubmitted, PublicDossierStatus
from shared.contracts.topics import PUBLIC_TOPICS
from shared.tools.asyncapi import EXAMPLES, asyncapi_router, build_document, channel_id, render_yaml
from shared.tools.snapshots import public_models

OFFICIAL_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a nested document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A validator for a schema of the document whose `#/components/...` refs resolve."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    official = json.loads(OFFICIAL_SCHEMA.read_text())
    check = jsonschema.Draft7Validator(official)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in check.iter_errors(document)]
    assert errors == []
    # The official schema really checks: an unknown action is refused.
    broken = json.loads(json.dumps(document))
    next(iter(broken["operations"].values()))["action"] = "consume"
    assert not check.is_valid(broken)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = [value for key, value in walk(document) if key == "$ref"]
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        resolve(document, ref)  # KeyError when dangling


def test_covers_exactly_the_public_topics(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(PUBLIC_TOPICS)
    operations = document["operations"].values()
    assert len(operations) == len(PUBLIC_TOPICS)
    assert {op["action"] for op in operations} == {"receive"}
    assert {resolve(document, op["channel"]["$ref"])["address"] for op in operations} == set(
        PUBLIC_TOPICS
    )


@pytest.mark.parametrize("topic", PUBLIC_TOPICS)
def test_message_is_the_model_with_cloudevents_headers_and_key(
    document: dict[str, Any], topic: str
) -> None:
    model = public_models()[topic]
    channel = document["channels"][channel_id(topic)]
    (message_ref,) = channel["messages"].values()
    message = resolve(document, message_ref["$ref"])
    payload = resolve(document, message["payload"]["$ref"])
    own = model.model_json_schema(mode="serialization", ref_template=asyncapi.SCHEMA_REF)
    own.pop("$defs", None)
    assert payload == own  # the payload is the model's own JSON Schema
    headers = validator(document, message["headers"])
    payload_check = validator(document, message["payload"])
    key_check = jsonschema.Draft202012Validator(message["bindings"]["kafka"]["key"])
    assert message["examples"]
    for example in message["examples"]:
        payload_check.validate(example["payload"])
        headers.validate(example["headers"])
        assert example["headers"]["ce_type"] == model.event_type
        key = example["headers"]["ce_subject"]
        key_check.validate(key)
        instance = model.model_validate(example["payload"])
        record = wrap(instance, example["headers"]["ce_source"]).to_kafka()
        assert record.key.decode() == key  # the subject is the record key
        # The headers schema names exactly what the producers write.
        assert set(message["headers"]["required"]) == {name for name, _ in record.headers}


def test_example_sources_are_the_producers_sources(document: dict[str, Any]) -> None:
    from services.intake.service import SOURCE as INTAKE_SOURCE
    from services.notification.webhooks.domain.projection import SOURCE as PUBLIC_STREAM_SOURCE

    sources = {model: {e.source for e in examples} for model, examples in EXAMPLES.items()}
    assert sources[PublicDossierStatus] == {PUBLIC_STREAM_SOURCE}
    assert sources[public_models()["dvc.catalogue.procedure.v1"]] == {INTAKE_SOURCE}


def personal_field_names() -> set[str]:
    """The fields of the internal submitted event that identify or reach the applicant."""
    personal = {"applicant", "contact", "form", "documents"}
    assert personal <= set(DossierSubmitted.model_fields)
    return (personal | set(Applicant.model_fields) | set(Contact.model_fields)) - {"kind"}


PERSONAL = re.compile(
    r"citizen|applicant|identifier|cccd|cmnd|passport|phone|e_?mail|contact|address|birth|"
    r"full_?name|person|tax_?code",
    re.IGNORECASE,
)


def property_names(schema: Any) -> set[str]:
    return {name for key, value in walk(schema) if key == "properties" for name in value}


def test_public_payloads_carry_no_personal_data(document: dict[str, Any]) -> None:
    names = property_names(document["components"]["schemas"]) | property_names(
        [m["headers"] for m in document["components"]["messages"].values()]
    )
    assert [n for n in names if PERSONAL.search(n)] == []
    # The dossier-status stream has none of the submitted event's applicant fields, not even a
    # `name` (the catalogue's `name` is a procedure's or a fee's, not a person's).
    status = document["components"]["messages"]["PublicDossierStatus"]
    status_names = property_names(resolve(document, status["payload"]["$ref"]))
    assert status_names & personal_field_names() == set()
    assert "name" not in status_names


def test_checked_in_document_is_up_to_date() -> None:
    assert asyncapi.DOCUMENT_PATH.read_text() == render_yaml(build_document()), (
        "contracts/asyncapi.yaml is out of date: run `.venv/bin/python -m shared.tools.asyncapi`, "
        "review the diff and commit it"
    )
    assert asyncapi.main(["--check"]) == 0


def test_check_command_fails_on_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(render_yaml(build_document()).replace("receive", "send", 1))
    monkeypatch.setattr(asyncapi, "DOCUMENT_PATH", stale)
    assert asyncapi.main(["--check"]) == 1
    assert "python -m shared.tools.asyncapi" in capsys.readouterr().err
    assert asyncapi.main([]) == 0 and asyncapi.main(["--check"]) == 0


async def test_router_serves_yaml_and_json(document: dict[str, Any]) -> None:
    app = FastAPI()
    app.include_router(asyncapi_router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        as_yaml = await client.get("/asyncapi.yaml")
        as_json = await client.get("/asyncapi.json")
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == document
    assert as_json.status_code == 200
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json() == document


def test_a_public_topic_without_an_example_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncapi, "EXAMPLES", {})
    with pytest.raises(LookupError, match="no example for"):
        build_document()

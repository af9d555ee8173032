"""The OpenAPI documents say every answer: each error an operation can give is documented as an
RFC 9457 problem (`application/problem+json`), and the rules the code enforces are in the schema
where OpenAPI can say them, in the description where it cannot (issue 14, contract accuracy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.runtime.http import (
    PROBLEM_JSON,
    StrictAwareDatetime,
    StrictDate,
    StrictQueryBool,
    problems,
)
from tests.contract.documents import SERVICES, document, operations

API_PREFIXES = ("/api/", "/notifications/")


def operation(service: str, method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document(service)["paths"][path][method.lower()]
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_is_a_problem_and_never_the_framework_default(service: str) -> None:
    doc = document(service)
    assert "HTTPValidationError" not in doc["components"].get("schemas", {})
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert set(response.get("content", {})) == {PROBLEM_JSON}, (method, path, status)
            schema = response["content"][PROBLEM_JSON]["schema"]
            assert schema["title"] == "Problem"
            assert {"title", "status"} <= set(schema["required"])


@pytest.mark.parametrize("service", SERVICES)
def test_each_operation_documents_the_answers_it_can_give(service: str) -> None:
    doc = document(service)
    for method, path, op in operations(doc):
        statuses = {int(s) for s in op["responses"]}
        where = (method, path, sorted(statuses))
        if op.get("parameters") or op.get("requestBody"):
            assert 422 in statuses, where  # the schema's own refusals
        if op.get("requestBody"):
            assert 413 in statuses, where  # every body is limited before it is parsed
        if path.startswith(API_PREFIXES):
            assert 503 in statuses, where  # the database or the broker away
        if op.get("security"):
            assert 401 in statuses, where
        if {"HTTPBearer": []} in op.get("security", []):
            assert 403 in statuses, where  # staff: a role or unit may not


def test_the_status_of_each_kind_of_refusal_is_documented_where_it_happens() -> None:
    submit = operation("intake", "post", "/api/v1/dossiers")
    assert {"400", "409", "413", "415", "422", "429"} <= set(submit["responses"])
    tracking = operation("intake", "get", "/api/v1/dossiers/{code}")
    assert {"404", "429"} <= set(tracking["responses"])
    retry_after = tracking["responses"]["429"]["headers"]["Retry-After"]
    assert retry_after["schema"]["pattern"] == "^[0-9]+$"
    assert "WWW-Authenticate" in operation("processing", "get", "/api/v1/cases")["responses"][
        "401"
    ].get("headers", {})
    assert "409" in operation("processing", "post", "/api/v1/cases/{code}/approve")["responses"]
    for service, path in [
        ("notification", "/api/v1/webhooks/subscriptions/{subscription_id}"),
        ("notification", "/notifications/dossiers/{dossier_code}/inbox"),
        ("intake", "/api/v1/procedures/{code}"),
    ]:
        assert "404" in operation(service, "get", path)["responses"], path


def test_the_counter_submission_documents_its_multipart_body() -> None:
    body = operation("intake", "post", "/api/v1/counter/dossiers")["requestBody"]
    assert body["required"] is True
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["dossier"]
    dossier = schema["properties"]["dossier"]
    assert dossier["contentMediaType"] == "application/json"
    assert {"received_at", "channel", "procedure_code"} <= set(
        dossier["contentSchema"]["properties"]
    )
    assert "$ref" not in str(dossier["contentSchema"])  # written in place: nothing dangles
    assert schema["additionalProperties"]["format"] == "binary"
    supplements = operation("intake", "post", "/api/v1/dossiers/{code}/supplements")
    assert "multipart/form-data" in supplements["requestBody"]["content"]


def test_rules_the_code_enforces_are_in_the_document() -> None:
    admin = operation("intake", "put", "/api/v1/admin/procedures/{code}")
    assert "must equal the path's `code`" in admin["description"]

    quarterly = operation("reporting", "get", "/api/v1/reports/quarterly")
    params = {p["name"]: p for p in quarterly["parameters"]}
    assert "With `quarter`" in params["year"]["description"]
    assert "With `to`" in params["from"]["description"]
    assert "never a mix" in quarterly["responses"]["422"]["description"]
    assert set(quarterly["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
        "text/html",
    }

    schemas = document("processing")["components"]["schemas"]
    new_due = schemas["ExtendBody"]["properties"]["new_due_date"]
    assert "after the due date in force" in new_due["description"]
    assert new_due["format"] == "date"
    upload = operation("processing", "post", "/api/v1/cases/{code}/result")
    encoding = upload["requestBody"]["content"]["multipart/form-data"]["encoding"]
    assert "application/pdf" in encoding["file"]["contentType"]
    assert "application/pdf" in upload["responses"]["415"]["description"]

    hooks = document("notification")["components"]["schemas"]
    url = hooks["SubscriptionIn"]["properties"]["url"]
    assert url["pattern"] == "^[hH][tT][tT][pP][sS]?://"
    assert "`https` on port 443" in url["description"]
    since = hooks["ReplayIn"]["properties"]["since"]
    assert "in the past" in since["description"]
    assert "1970-01-01T00:00:00Z" in since["description"]


def test_agencies_authenticate_with_declared_api_key_schemes() -> None:
    doc = document("notification")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["AgencyApiKey"] == {
        "type": "apiKey",
        "description": "The same key",
        "in": "header",
        "name": "X-API-Key",
    }
    listing = operation("notification", "get", "/api/v1/webhooks/subscriptions")
    assert {"AgencyApiKey": []} in listing["security"]
    assert not any(p["name"].lower() == "x-api-key" for p in listing.get("parameters", []))


# -- strict inputs: what the document forbids, the code refuses ----------------------------------


@pytest.mark.parametrize("value", [0, 1, "0", "1", "yes", None])
def test_a_boolean_body_member_takes_only_true_or_false(value: Any) -> None:
    from services.processing.api.schemas import CalendarChangeBody

    with pytest.raises(ValidationError):
        CalendarChangeBody.model_validate({"day": "2026-05-04", "working": value, "reason": "x"})
    body = CalendarChangeBody.model_validate({"day": "2026-05-04", "working": False, "reason": "x"})
    assert body.working is False


@pytest.mark.parametrize("value", [0, 0.5, "0", "0.5", "1714000000", 1e9, True])
def test_dates_and_moments_are_iso_text_never_numbers(value: Any) -> None:
    for adapter in (TypeAdapter(StrictDate), TypeAdapter(StrictAwareDatetime)):
        with pytest.raises(ValidationError):
            adapter.validate_python(value)
    assert TypeAdapter(StrictDate).validate_python("2026-05-04").isoformat() == "2026-05-04"
    moment = TypeAdapter(StrictAwareDatetime).validate_python("2026-05-04T08:00:00+07:00")
    assert moment == datetime(2026, 5, 4, 1, tzinfo=UTC)


def test_a_query_boolean_is_true_or_false() -> None:
    adapter = TypeAdapter(StrictQueryBool)
    assert adapter.validate_python("true") is True
    assert adapter.validate_python("False") is False
    for value in ("0", "1", "yes", "off", ""):
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


def test_a_replay_is_refused_up_front_before_1970_or_as_a_number() -> None:
    from services.notification.webhooks.api import ReplayIn

    for since in ("1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", 0, 0.5, "0"):
        with pytest.raises(ValidationError):
            ReplayIn.model_validate({"since": since})
    assert ReplayIn.model_validate({"since": "1970-01-01T00:00:00Z"}).since.year == 1970


def test_a_failed_replay_never_shows_the_internal_error_to_the_agency() -> None:
    from services.notification.webhooks.api import REPLAY_FAILED, ReplayOut

    job = {
        "_id": "r1",
        "subscription_id": "s1",
        "since": datetime(2026, 1, 1, tzinfo=UTC),
        "status": "failed",
        "enqueued": 0,
        "created_at": datetime(2026, 1, 2, tzinfo=UTC),
        "error": "ValueError: offsets_for_times: target time cannot be negative",
    }
    shown = ReplayOut.of(job)
    assert shown.error == REPLAY_FAILED
    assert "ValueError" not in shown.model_dump_json()
    assert ReplayOut.of({**job, "status": "done", "error": None}).error is None


def test_problems_refuses_notes_for_statuses_it_does_not_list() -> None:
    with pytest.raises(ValueError, match="409"):
        problems(404, notes={409: "conflict"})
    assert "Rated" in problems(409, notes={409: "Rated already"})[409]["description"]

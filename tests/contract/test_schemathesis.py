"""Schemathesis against the four running services (real broker and database, real tokens, real
ids): for every operation of each OpenAPI document, a bounded number of generated requests, valid
and invalid, each answer checked: no server error, a documented status and media type, a body and
headers that match the document, and invalid input refused (issue 14, contract accuracy).

A failure prints the request as a `curl` command; `SCHEMATHESIS_EXAMPLES` raises the examples per
operation for a longer local run (e.g. 100)."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import _TOKENS
from tests.contract.documents import SERVICES, document
from tests.contract.platform import Platform, running_platform

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
# Not checked: `positive_data_acceptance`, since a request the schema allows may still break a
# business rule (an unknown procedure, a dossier in another state): those are 4xx by design.


def load(service: str) -> Any:
    schema = schemathesis.openapi.from_dict(document(service))
    # Credentials are the test's own (real tokens and keys), never generated ones.
    schema.config.generation.update(with_security_parameters=False)
    return schema


SCHEMAS = {service: load(service) for service in SERVICES}
REQUESTS: Counter[str] = Counter()
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure is reproducible
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def platform(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    token = uuid.uuid4().hex[:10]
    _TOKENS.append(token)  # its topics are deleted at the end of the session
    directory = tmp_path_factory.mktemp("contract")
    with running_platform(kafka_bootstrap, mongo_url, directory, token) as running:
        yield running
    print(f"\nSchemathesis requests per service: {dict(REQUESTS)}")


def credentials(service: str, path: str, platform: Platform, positive: bool) -> dict[str, str]:
    if service == "intake":
        if path.startswith(("/api/v1/counter/", "/api/v1/admin/")):
            return platform.staff("admin")
        if path.startswith("/api/v1/dossiers/{code}") and positive:
            return {"X-Tracking-Secret": platform.secret}
        return {}
    if path.startswith("/api/v1/webhooks/"):
        return {"X-API-Key": platform.api_key}
    if path.startswith(("/api/v1/cases", "/api/v1/results", "/api/v1/calendar", "/api/v1/re")):
        return platform.staff("admin")
    if path.startswith(("/notifications/dossiers/", "/api/v1/portal-sync")):
        return platform.staff("admin")
    return {}


def exercise(service: str, case: Any, platform: Platform) -> None:
    """Send `case` with real credentials; in valid cases, the path names seeded records."""
    positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    path = case.operation.path
    if positive and case.path_parameters:
        for name in list(case.path_parameters):
            if name in platform.ids:
                case.path_parameters[name] = platform.ids[name]
        if "/procedures/{code}" in path:
            case.path_parameters["code"] = platform.ids["procedure_code"]
    REQUESTS[service] += 1
    case.call_and_validate(
        base_url=platform.urls[service],
        headers=credentials(service, path, platform, positive),
        # Readiness answers 503 when a dependency is slow or away: that is its documented job.
        checks=CHECKS[1:] if path == "/health/ready" else CHECKS,
        timeout=30,
    )


@SCHEMAS["intake"].parametrize()
@BOUNDED
def test_intake(case: Any, platform: Platform) -> None:
    exercise("intake", case, platform)


@SCHEMAS["processing"].parametrize()
@BOUNDED
def test_processing(case: Any, platform: Platform) -> None:
    exercise("processing", case, platform)


@SCHEMAS["notification"].parametrize()
@BOUNDED
def test_notification(case: Any, platform: Platform) -> None:
    exercise("notification", case, platform)


@SCHEMAS["reporting"].parametrize()
@BOUNDED
def test_reporting(case: Any, platform: Platform) -> None:
    exercise("reporting", case, platform)

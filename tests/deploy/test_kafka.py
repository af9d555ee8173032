"""Kafka topics and users in the manifests follow shared/contracts/topics.py."""

from __future__ import annotations

from typing import Any

import pytest

from shared.contracts.topics import (
    DEAD_LETTER_RETENTION_MS,
    DOSSIER_RETENTION_MS,
    GROUP_SERVICE,
    PRODUCERS,
    PUBLIC_TOPICS,
    SUBSCRIPTIONS,
    dead_letters_of,
    platform_topics,
    subscriptions_of,
)
from tests.deploy.tools import DATA_SERVICES, SERVICES

Doc = dict[str, Any]
WRITE_LIKE = {"Write", "Create", "Delete", "Alter", "AlterConfigs", "All", "IdempotentWrite"}


@pytest.fixture(scope="module")
def production(rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered["overlays/production"]


def users(docs: list[Doc]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}


def allowed(user: Doc, operation: str, resource_type: str, name: str) -> bool:
    """Kafka's simple authorizer for allow-only ACLs: literal, prefix and '*' patterns."""
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if resource["type"] != resource_type:
            continue
        pattern = resource.get("name", "")
        if resource.get("patternType", "literal") == "prefix":
            matches = name.startswith(pattern)
        else:
            matches = pattern in ("*", name)
        operations = set(acl["operations"])
        implied = (
            {"Describe"} if operation == "Describe" and operations & {"Read", "Write"} else set()
        )
        if matches and (operation in operations or "All" in operations or implied):
            return True
    return False


def own_topics(service: str) -> set[str]:
    return set(PRODUCERS[service]) | set(dead_letters_of(service))


def test_every_topic_the_code_uses_has_a_kafka_topic(production: list[Doc]) -> None:
    topics = {d["spec"]["topicName"]: d["spec"] for d in production if d["kind"] == "KafkaTopic"}
    expected = platform_topics()
    assert set(topics) == {spec.name for spec in expected}
    for spec in expected:
        config = topics[spec.name]["config"]
        assert topics[spec.name]["replicas"] == 3
        assert config["min.insync.replicas"] == "2"
        if spec.compacted:
            assert config["cleanup.policy"] == "compact"
            assert topics[spec.name]["partitions"] == spec.partitions
        else:
            assert config.get("cleanup.policy", "delete") == "delete"
            # Decree 13/2023 (storage limitation): nothing with personal data kept forever.
            wanted = (
                DEAD_LETTER_RETENTION_MS if spec.name.endswith(".dlq") else DOSSIER_RETENTION_MS
            )
            assert config["retention.ms"] == str(wanted), spec.name
        if spec.name.endswith(".dlq"):
            assert topics[spec.name]["partitions"] == 1


def test_the_services_are_the_topic_owners() -> None:
    assert set(DATA_SERVICES) == set(PRODUCERS) == set(GROUP_SERVICE.values())
    assert set(GROUP_SERVICE) == set(SUBSCRIPTIONS)


def test_each_service_writes_only_its_own_topics(production: list[Doc]) -> None:
    by_name = users(production)
    for service in DATA_SERVICES:
        user = by_name[f"dvc-{service}"]
        for spec in platform_topics():
            may_write = allowed(user, "Write", "topic", spec.name)
            assert may_write == (spec.name in own_topics(service)), (service, spec.name)
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl["resource"]["type"] in {"topic", "group"}, f"{service}: {acl}"
            assert acl["resource"]["patternType"] == "literal", f"{service}: {acl}"
            assert not set(acl["operations"]) & (WRITE_LIKE - {"Write"}), f"{service}: {acl}"


def test_each_service_reads_its_subscriptions_as_its_own_group(production: list[Doc]) -> None:
    by_name = users(production)
    for service in DATA_SERVICES:
        user = by_name[f"dvc-{service}"]
        readable = {s.name for s in platform_topics() if allowed(user, "Read", "topic", s.name)}
        assert readable == set(subscriptions_of(service))
        assert allowed(user, "Read", "group", service)
        for group, owner in GROUP_SERVICE.items():
            assert allowed(user, "Read", "group", group) == (owner == service), group


def test_every_topic_has_exactly_one_writer(production: list[Doc]) -> None:
    service_users = [users(production)[f"dvc-{s}"] for s in DATA_SERVICES]
    for spec in platform_topics():
        writers = [u for u in service_users if allowed(u, "Write", "topic", spec.name)]
        assert len(writers) == 1, f"{spec.name}: {[w['metadata']['name'] for w in writers]}"


def test_agencies_are_read_only_on_the_public_topics(production: list[Doc]) -> None:
    agencies = [
        u for u in users(production).values() if u["metadata"]["name"].startswith("agency-")
    ]
    assert agencies, "an example agency user belongs in deploy/k8s/agencies.yaml"
    for user in agencies:
        agency = user["metadata"]["name"].removeprefix("agency-")
        for acl in user["spec"]["authorization"]["acls"]:
            assert set(acl["operations"]) <= {"Read", "Describe"}, acl
            assert acl["resource"]["type"] in {"topic", "group"}, acl
        for spec in platform_topics():
            assert not allowed(user, "Write", "topic", spec.name)
            assert allowed(user, "Read", "topic", spec.name) == (spec.name in PUBLIC_TOPICS)
        assert allowed(user, "Read", "group", f"{agency}-status-feed")
        assert not allowed(user, "Read", "group", "reporting")
        assert user["spec"]["quotas"]["consumerByteRate"] > 0


def test_public_topics_carry_no_internal_dossier_stream() -> None:
    # The agencies' topics are the redacted projection and the catalogue, never raw dossier events.
    assert all(not topic.startswith("dvc.dossier.") for topic in PUBLIC_TOPICS)


def test_the_portal_has_no_kafka_user(production: list[Doc]) -> None:
    """It holds no data: no user, so no Secret of a Kafka password to leak from its pod."""
    names = set(users(production))
    assert {f"dvc-{s}" for s in DATA_SERVICES} <= names
    assert not {f"dvc-{s}" for s in SERVICES if s not in DATA_SERVICES} & names

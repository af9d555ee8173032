"""docker-compose.yml: valid against the compose specification, and wired as documented."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.tools import ROOT, SERVICES, run, venv_tool

COMPOSE = ROOT / "docker-compose.yml"
PINNED = re.compile(r"^[\w.\-/]+:v?\d+\.\d+\.\d+[\w.\-]*(@sha256:[0-9a-f]{64})?$")
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_validates_against_the_compose_spec() -> None:
    result = run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            continue  # our own image, built from the Dockerfile
        assert PINNED.match(image), f"{name}: {image} is not pinned to an exact version"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.1.")
    assert compose["services"]["mongo"]["image"].startswith("mongo:")


def test_kafka_runs_in_kraft_mode_without_auto_created_topics(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "zookeeper" not in str(env).lower()
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_mongodb_is_a_replica_set_initiated_once(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["mongo"]["command"][:3] == ["mongod", "--replSet", "rs0"]
    init = services["mongo-init"]
    assert init["image"] == services["mongo"]["image"]
    assert "rs.initiate" in " ".join(init["command"])
    assert init["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_topics_are_created_by_a_one_shot_job_of_our_image(compose: dict[str, Any]) -> None:
    job = compose["services"]["kafka-topics"]
    assert job["command"] == ["python", "/app/create_topics.py"]
    assert job["restart"] == "no"
    assert job["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert (ROOT / "deploy" / "create_topics.py").is_file()


def test_each_service_waits_for_topics_and_replica_set(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert "/health/ready" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"] == {
            "kafka-topics": {"condition": "service_completed_successfully"},
            "mongo-init": {"condition": "service_completed_successfully"},
        }
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        env = service["environment"]
        prefix = f"DVC_{name.upper()}_"
        assert env[f"{prefix}KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert "replicaSet=rs0" in env[f"{prefix}MONGO_URL"]
        assert all(key.startswith(prefix) for key in env), f"{name}: another service's variable"


def test_monitoring_is_loaded_from_the_repository(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert (
        "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro"
        in services["grafana"]["volumes"]
    )


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    assert {"kafka-data", "mongo-data"} <= used


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAMES.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), (
                    f"{name}.{key} is set in the file"
                )


def test_env_example_lists_every_variable_the_file_uses() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text(encoding="utf-8")))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert used <= listed, f".env.example lacks {sorted(used - listed)}"
    for line in example.splitlines():
        key, _, value = line.partition("=")
        if SECRET_NAMES.search(key) and not line.startswith("#"):
            assert value == "", f".env.example must not hold a value for {key}"

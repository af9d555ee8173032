"""docker-compose.yml: valid against the compose specification, and wired as documented."""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DATA_SERVICES, ROOT, SERVICES, interpolate, run, venv_tool

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
    for name in DATA_SERVICES:
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
        assert "backend" in service["networks"]
        assert service["secrets"] == ["jwt_public_key"]


def test_every_service_runs_locked_down(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert service["image"] == "${DVC_IMAGE:-dvc-platform:local}"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert any(mount.startswith("/tmp:") for mount in service["tmpfs"])
        assert "/health/ready" in " ".join(service["healthcheck"]["test"])
        assert service["restart"] == "unless-stopped"


# --- the portal ----------------------------------------------------------------------------

PORTAL_ADDRESS = "172.16.238.10"


def test_the_portal_holds_no_data_and_verifies_no_token(compose: dict[str, Any]) -> None:
    portal = compose["services"]["portal"]
    assert list(portal["networks"]) == ["portal"], "not on the backend network (Kafka, MongoDB)"
    assert "secrets" not in portal
    env = portal["environment"]
    assert all(key.startswith("DVC_PORTAL_") for key in env)
    assert not any(re.search(r"KAFKA|MONGO|JWT", key) for key in env)
    assert env["DVC_PORTAL_INTAKE_BASE_URL"] == "http://intake:8000"
    assert portal["depends_on"] == {"intake": {"condition": "service_healthy"}}
    assert portal["ports"] == ["${DVC_PUBLISH_ADDRESS:-127.0.0.1}:8000:8000"]
    published = [p.split(":")[-2] for s in compose["services"].values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), f"a host port published twice: {published}"


def test_the_portal_gets_its_production_settings(compose: dict[str, Any]) -> None:
    env = compose["services"]["portal"]["environment"]
    assert env["DVC_PORTAL_ENVIRONMENT"] == "${DVC_ENVIRONMENT:-production}"
    assert re.fullmatch(r"\$\{DVC_PORTAL_SECRET_KEY:\?[^}]+\}", env["DVC_PORTAL_SECRET_KEY"])
    assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", env["DVC_PORTAL_PUBLIC_BASE_URL"])
    assert env["DVC_PORTAL_COOKIE_SECURE"] == "true"


def _portal_network(compose: dict[str, Any]) -> dict[str, Any]:
    [config] = compose["networks"]["portal"]["ipam"]["config"]
    return config


def test_intake_believes_exactly_the_portal(compose: dict[str, Any]) -> None:
    """Intake believes the X-Forwarded-For of the portal's fixed address, not of the portal
    network (its gateway is where the host's clients of the published ports come from), plus
    the operator's reverse proxy when there is one."""
    services = compose["services"]
    address = services["portal"]["networks"]["portal"]["ipv4_address"]
    assert address == PORTAL_ADDRESS
    network = _portal_network(compose)
    assert ip_address(address) in ip_network(network["subnet"])
    assert ip_address(address) not in ip_network(network["ip_range"]), "dynamic addresses"
    assert ip_address(address) != ip_address(network["gateway"])
    assert "portal" in services["intake"]["networks"]
    trusted = services["intake"]["environment"]["DVC_INTAKE_TRUSTED_PROXIES"]
    assert interpolate(trusted, {"DVC_TRUSTED_PROXIES": ""}) == address
    assert interpolate(trusted, {}) == address
    assert (
        interpolate(trusted, {"DVC_TRUSTED_PROXIES": "10.0.0.5,10.1.0.0/16"})
        == f"{address},10.0.0.5,10.1.0.0/16"
    )


def test_only_what_the_portal_calls_and_prometheus_join_its_network(
    compose: dict[str, Any],
) -> None:
    members = {
        name for name, service in compose["services"].items() if "portal" in service["networks"]
    }
    assert members == {"portal", "intake", "reporting", "prometheus"}
    assert "portal" in compose["services"]["prometheus"]["depends_on"]


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


def test_the_topics_job_sets_the_retention_of_shared_topics(compose: dict[str, Any]) -> None:
    """Decree 13/2023: the dossier and dead-letter topics are not kept forever; compose's
    defaults are the code's (`${VAR:-default}`), and a deployment may change them."""
    from shared.contracts.topics import DEAD_LETTER_RETENTION_MS, DOSSIER_RETENTION_MS

    environment = compose["services"]["kafka-topics"]["environment"]
    for name, wanted in (
        ("DVC_TOPICS_RETENTION_MS", DOSSIER_RETENTION_MS),
        ("DVC_TOPICS_DEAD_LETTER_RETENTION_MS", DEAD_LETTER_RETENTION_MS),
    ):
        assert environment[name] == f"${{{name}:-{wanted}}}", name

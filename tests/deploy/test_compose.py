"""docker-compose.yml: valid against the compose specification, and wired as documented."""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
import yaml

from tests.deploy.tools import (
    DATA_SERVICES,
    PORTAL_CALLS,
    ROOT,
    SERVICES,
    interpolate,
    run,
    venv_tool,
)

COMPOSE = ROOT / "docker-compose.yml"
PINNED = re.compile(r"^[\w.\-/]+:v?\d+\.\d+\.\d+[\w.\-]*(@sha256:[0-9a-f]{64})?$")
# PostgreSQL's releases are major.minor: that is its exact version.
PINNED_POSTGRES = re.compile(r"^postgres:\d+\.\d+(@sha256:[0-9a-f]{64})?$")
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
        pinned = PINNED.match(image) or PINNED_POSTGRES.match(image)
        assert pinned, f"{name}: {image} is not pinned to an exact version"
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
        assert "sso" in service["networks"], "reaches the identity provider"
        assert "secrets" not in service, "keys come from the provider's JWKS, not a key file"


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
    assert set(portal["networks"]) == {"portal", "sso"}, "not on the backend (Kafka, MongoDB)"
    assert "secrets" not in portal
    env = portal["environment"]
    assert all(key.startswith("DVC_PORTAL_") for key in env)
    assert not any(re.search(r"KAFKA|MONGO|JWT", key) for key in env)
    assert env["DVC_PORTAL_INTAKE_BASE_URL"] == "http://intake:8000"
    assert env["DVC_PORTAL_REPORTING_BASE_URL"] == "http://reporting:8000"
    # the officers' workspace, with the officer's token
    assert env["DVC_PORTAL_PROCESSING_BASE_URL"] == "http://processing:8000"
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
    assert members == {"portal", *PORTAL_CALLS, "prometheus"}
    assert "portal" in compose["services"]["prometheus"]["depends_on"]


def test_the_portal_reaches_every_service_it_calls(compose: dict[str, Any]) -> None:
    """Each `DVC_PORTAL_<SERVICE>_BASE_URL` names the service on a network the portal shares
    with it (the portal network: the sso network is the identity provider's)."""
    services = compose["services"]
    env = services["portal"]["environment"]
    for name in PORTAL_CALLS:
        assert env[f"DVC_PORTAL_{name.upper()}_BASE_URL"] == f"http://{name}:8000", name
        assert "portal" in services[name]["networks"], f"{name} is not on the portal network"


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


# --- the identity provider -----------------------------------------------------------------

REALM_MOUNT = "./deploy/keycloak/realm-dvc.json:/opt/keycloak/data/import/realm-dvc.json:ro"


def test_keycloak_is_devstack_s_version_started_for_production(compose: dict[str, Any]) -> None:
    from devstack.config import KEYCLOAK_VERSION

    keycloak = compose["services"]["keycloak"]
    assert keycloak["image"] == f"quay.io/keycloak/keycloak:{KEYCLOAK_VERSION}"
    assert PINNED.match(keycloak["image"])
    assert keycloak["command"] == ["start", "--import-realm"], "production mode, not start-dev"
    assert REALM_MOUNT in keycloak["volumes"]
    env = keycloak["environment"]
    assert env["KC_DB"] == "postgres"
    assert env["KC_DB_URL"] == "jdbc:postgresql://keycloak-db:5432/keycloak"
    assert env["KC_HOSTNAME"].startswith("${DVC_KEYCLOAK_PUBLIC_URL:?")
    assert env["KC_PROXY_HEADERS"] == "xforwarded"
    assert env["KC_HEALTH_ENABLED"] == "true"
    assert keycloak["cap_drop"] == ["ALL"]
    assert keycloak["depends_on"] == {"keycloak-db": {"condition": "service_healthy"}}


def test_keycloak_and_its_database_have_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    check = " ".join(services["keycloak"]["healthcheck"]["test"])
    assert "/dev/tcp/127.0.0.1/9000" in check and "/health/ready" in check, "management port"
    assert services["keycloak"]["healthcheck"]["start_period"]
    assert "pg_isready" in services["keycloak-db"]["healthcheck"]["test"]
    assert "keycloak-db-data" in " ".join(services["keycloak-db"]["volumes"])


def test_keycloak_s_database_is_reachable_from_keycloak_only(compose: dict[str, Any]) -> None:
    assert compose["networks"]["sso-db"]["internal"] is True
    members = {n for n, s in compose["services"].items() if "sso-db" in s["networks"]}
    assert members == {"keycloak", "keycloak-db"}


def test_the_services_and_the_portal_reach_keycloak(compose: dict[str, Any]) -> None:
    members = {n for n, s in compose["services"].items() if "sso" in s["networks"]}
    assert members == {"keycloak", *SERVICES}


def test_every_service_verifies_tokens_with_the_provider_s_jwks(compose: dict[str, Any]) -> None:
    for name in DATA_SERVICES:
        env = compose["services"][name]["environment"]
        prefix = f"DVC_{name.upper()}_"
        assert env[f"{prefix}JWT_ISSUER"] == "${DVC_JWT_ISSUER:?set DVC_JWT_ISSUER in .env}"
        assert env[f"{prefix}JWT_JWKS_URL"] == "${DVC_JWT_JWKS_URL:?set DVC_JWT_JWKS_URL in .env}"
        assert f"{prefix}JWT_PUBLIC_KEY_FILE" not in env, "a key file would win over the JWKS"
    assert "secrets" not in compose
    # the key file stays a documented alternative
    assert "JWT_PUBLIC_KEY_FILE" in COMPOSE.read_text(encoding="utf-8")


def test_the_example_issuer_and_jwks_are_keycloak_s_realm() -> None:
    """.env.example's example addresses are the compose Keycloak's realm and its certs."""
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    issuer = re.search(r"DVC_JWT_ISSUER=(https://\S+)", example)
    jwks = re.search(r"DVC_JWT_JWKS_URL=(https://\S+)", example)
    assert issuer and jwks
    assert issuer.group(1).endswith("/realms/dvc")
    assert jwks.group(1) == issuer.group(1) + "/protocol/openid-connect/certs"


def test_the_portal_signs_staff_in_at_the_provider(compose: dict[str, Any]) -> None:
    env = compose["services"]["portal"]["environment"]
    assert env["DVC_PORTAL_OIDC_ISSUER_URL"] == "${DVC_JWT_ISSUER:?set DVC_JWT_ISSUER in .env}"
    assert env["DVC_PORTAL_OIDC_CLIENT_ID"] == "${DVC_OIDC_CLIENT_ID:-dvc-workspace}"
    secret = env["DVC_PORTAL_OIDC_CLIENT_SECRET"]
    assert re.fullmatch(r"\$\{DVC_OIDC_CLIENT_SECRET:\?[^}]+\}", secret)
    assert env["DVC_PORTAL_OIDC_REDIRECT_BASE_URL"] == env["DVC_PORTAL_PUBLIC_BASE_URL"]
    # Keycloak imports the same client secret and the portal's address into its realm.
    keycloak = compose["services"]["keycloak"]["environment"]
    assert keycloak["DVC_OIDC_CLIENT_SECRET"] == env["DVC_PORTAL_OIDC_CLIENT_SECRET"]
    assert keycloak["DVC_PORTAL_PUBLIC_BASE_URL"] == env["DVC_PORTAL_PUBLIC_BASE_URL"]


def test_the_imported_realm_has_no_demo_user_nor_development_secret() -> None:
    import json

    from services.portal.settings import DEVELOPMENT_OIDC_CLIENT_SECRET

    realm = json.loads((ROOT / "deploy" / "keycloak" / "realm-dvc.json").read_text("utf-8"))
    assert not realm.get("users")
    assert DEVELOPMENT_OIDC_CLIENT_SECRET not in json.dumps(realm)
    assert "127.0.0.1" not in json.dumps(realm) and "localhost" not in json.dumps(realm)
    [client] = realm["clients"]
    assert client["clientId"] == "dvc-workspace"
    assert client["secret"] == "${DVC_OIDC_CLIENT_SECRET}"
    from services.portal.workspace.routes import CALLBACK, LOGGED_OUT

    assert client["redirectUris"] == [f"${{DVC_PORTAL_PUBLIC_BASE_URL}}{CALLBACK}"]
    assert client["attributes"]["post.logout.redirect.uris"] == (
        f"${{DVC_PORTAL_PUBLIC_BASE_URL}}{LOGGED_OUT}"
    )
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert not client["publicClient"] and not client["directAccessGrantsEnabled"]
    # the claims the services read: `unit`, `roles`, and the platform's audience
    mappers = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
    claims = {config.get("claim.name") for config in mappers.values()}
    assert {"unit", "roles"} <= claims
    assert any(c.get("included.custom.audience") == "dvc-platform" for c in mappers.values())
    assert {r["name"] for r in realm["roles"]["realm"]} >= {
        "officer",
        "unit_head",
        "counter_officer",
        "admin",
    }

"""Each service would start in production with what the compose file and the Kubernetes manifests
give it: its settings' production checks (no development secrets, real JWT issuer...) pass.

Values from Secrets and `${VAR:?...}` placeholders (which `docker compose up` requires) become
stand-ins; a Fernet key where one is expected. Other variables of the compose file take their
defaults (.env left empty)."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from tests.deploy.tools import ROOT, interpolate

SETTINGS = {
    "intake": "services.intake.settings:IntakeSettings",
    "processing": "services.processing.settings:ProcessingSettings",
    "notification": "services.notification.settings:NotificationSettings",
    "reporting": "services.reporting.settings:ReportingSettings",
    "portal": "services.portal.settings:PortalSettings",
}
FERNET_FIELDS = {"WEBHOOK_SEALING_KEYS"}


def settings_class(service: str) -> Any:
    module, _, name = SETTINGS[service].partition(":")
    return getattr(importlib.import_module(module), name)


def stand_in(variable: str) -> str:
    if any(variable.endswith(field) for field in FERNET_FIELDS):
        return Fernet.generate_key().decode()
    if variable.endswith("_URL"):  # what an operator gives: the provider's https address
        return f"https://{variable.lower().replace('_', '-')}.example.vn"
    # as long as a real secret must be (the portal's cookie key: 32 characters at least)
    return f"stand-in-for-{variable.lower()}".ljust(40, "-")


def start(service: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return settings_class(service)()


def check_the_workspace(service: str, settings: Any) -> None:
    """The portal's officers' workspace is on (its client secret is given) and every address it
    uses is set: none left at its development default on this machine."""
    if service != "portal":
        return
    assert settings.workspace_client_secret, "production without the officers' workspace"
    for field in type(settings).model_fields:
        if field.endswith("_url"):
            value = getattr(settings, field)
            assert "127.0.0.1" not in value and "localhost" not in value, f"{field}: {value}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_compose_gives_each_service_what_production_needs(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    environment = {}
    for name, value in compose["services"][service]["environment"].items():
        text = str(value)
        if re.fullmatch(r"\$\{(\w+):\?[^}]*\}", text):
            environment[name] = stand_in(name)
        else:  # e.g. a URL built on a required value: the operator's .env gives it
            required = re.findall(r"\$\{(\w+):\?", text)
            given = {var: f"https://{var.lower().replace('_', '-')}.example" for var in required}
            environment[name] = interpolate(text, given)
    settings = start(service, environment, monkeypatch)
    assert settings.environment == "production"
    check_the_workspace(service, settings)


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_kubernetes_gives_each_service_what_production_needs(
    service: str, rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered["overlays/production"]
    config_maps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    [deployment] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == service
    ]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    environment = {}
    for variable in container["env"]:
        name = variable["name"]
        source = variable.get("valueFrom", {})
        if "value" in variable:
            environment[name] = variable["value"]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            environment[name] = config_maps[ref["name"]][ref["key"]]
        else:
            environment[name] = stand_in(name)
    settings = start(service, environment, monkeypatch)
    assert settings.environment == "production"
    check_the_workspace(service, settings)

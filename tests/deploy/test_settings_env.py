"""Every DVC_<SERVICE>_<FIELD> the deployment sets is a setting the service reads."""

from __future__ import annotations

import importlib
from typing import Any

import yaml

from tests.deploy.tools import DATA_SERVICES, PORTAL_CALLS, ROOT, SERVICES


def settings_fields(service: str) -> set[str]:
    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and obj.__module__ == module.__name__
        and hasattr(obj, "model_fields")
    ]
    assert len(classes) == 1
    return set(classes[0].model_fields)


def unknown(service: str, names: list[str]) -> set[str]:
    prefix = f"DVC_{service.upper()}_"
    fields = settings_fields(service)
    return {
        n for n in names if n.startswith(prefix) and n.removeprefix(prefix).lower() not in fields
    }


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in SERVICES:
        names = list(compose["services"][service]["environment"])
        assert not unknown(service, names)


def test_kubernetes_sets_only_real_settings(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for doc in rendered["overlays/production"]:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in SERVICES:
            service = doc["metadata"]["name"]
            env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
            names = [e["name"] for e in env]
            assert not unknown(service, names)
            kafka_password = f"DVC_{service.upper()}_KAFKA_SASL_PASSWORD"
            assert (kafka_password in names) == (service in DATA_SERVICES), service


def test_the_portal_calls_are_its_settings() -> None:
    """PORTAL_CALLS (what the compose and Kubernetes tests require wired) is every service the
    portal's settings hold a base URL for: a new one fails here until it is wired too."""
    called = {
        field.removesuffix("_base_url")
        for field in settings_fields("portal")
        if field.endswith("_base_url")
    }
    assert called & set(DATA_SERVICES) == set(PORTAL_CALLS)

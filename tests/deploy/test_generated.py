"""The checked-in generated manifests are what deploy/k8s/generate.py writes today."""

from __future__ import annotations

import yaml

from deploy.k8s import generate
from tests.deploy.tools import ROOT, SERVICES


def test_generated_files_are_up_to_date() -> None:
    stale = generate.stale_files()
    assert not stale, f"out of date: {[str(p) for p in stale]}; run python -m deploy.k8s.generate"


def test_every_generated_file_is_in_the_base_kustomization() -> None:
    kustomization = yaml.safe_load((generate.BASE / "kustomization.yaml").read_text())
    resources = {str(generate.BASE / r) for r in kustomization["resources"]}
    assert {str(ROOT / path) for path in generate.render()} <= resources


def test_the_prometheus_rule_holds_every_rule_file() -> None:
    rule_files = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    assert rule_files
    expected = [
        group for path in rule_files for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert generate.prometheus_rule()["spec"]["groups"] == expected


def test_the_generator_covers_every_service_package() -> None:
    packages = {p.parent.name for p in (ROOT / "services").glob("*/__main__.py")}
    assert packages == set(SERVICES) == set(generate.SERVICES)

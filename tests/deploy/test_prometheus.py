"""deploy/prometheus/: the scrape config and its rules load in Prometheus."""

from __future__ import annotations

import re

import yaml

from tests.deploy.tools import ROOT, SERVICES, promtool, run

PROMETHEUS = ROOT / "deploy" / "prometheus"


def test_promtool_accepts_the_config_and_its_rules() -> None:
    result = run([promtool(), "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in sorted((PROMETHEUS / "rules").glob("*.yml")):
        assert f"rules/{path.name}" in result.stdout, f"{path.name} is not loaded"


def test_every_service_is_scraped_under_its_own_job() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in SERVICES:
        targets = jobs[service]["static_configs"][0]["targets"]
        assert targets == [f"{service}:8000"]
        assert jobs[service].get("metrics_path", "/metrics") == "/metrics"
    assert "rules/*.yml" in config["rule_files"]


def test_grafana_reads_prometheus_and_the_dashboards_folder() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    providers = yaml.safe_load((provisioning / "dashboards" / "dvc.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts


def test_service_down_watches_every_service() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules" / "availability.yml").read_text())["groups"]
    [alert] = [r for g in rules for r in g["rules"] if r.get("alert") == "ServiceDown"]
    jobs = re.search(r'job=~"([^"]+)"', alert["expr"]).group(1).split("|")
    assert set(jobs) == set(SERVICES)

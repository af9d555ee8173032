"""Prometheus under devstack (`python -m devstack up --with-monitoring`), on ports and a data folder
of its own: it loads the project's alert rules, scrapes what runs, sees what does not (`up == 0`,
the expression of ServiceDown), and stops with the rest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from devstack import prometheus_server, services
from devstack.__main__ import start_monitoring
from devstack.config import PROJECT_ROOT, StackConfig, load_config
from tests.integration.test_devstack import free_ports

RULES = PROJECT_ROOT / "deploy" / "prometheus" / "rules"
SERVICE_JOBS = ("intake", "processing", "notification", "reporting", "portal")


def api(config: StackConfig, path: str, **query: str) -> Any:
    address = prometheus_server.url(config) + path
    if query:
        address += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(address, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def up_by_job(config: StackConfig) -> dict[str, str]:
    return {
        sample["metric"]["job"]: sample["value"][1]
        for sample in api(config, "/api/v1/query", query="up")["result"]
    }


@pytest.fixture
def stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    if shutil.which("prometheus") is None:
        pytest.fail("no prometheus on PATH: run the tests with ./scripts/test")
    [prometheus_port] = free_ports(1)
    http_base = free_ports(services.PORT_COUNT + 1)[1]  # the portal takes the port below
    env = {
        "DEVSTACK_TEST_DATA_DIR": str(tmp_path / "stack"),
        "DEVSTACK_TEST_PROMETHEUS_PORT": str(prometheus_port),
        "DEVSTACK_TEST_HTTP_BASE_PORT": str(http_base),
        "DEVSTACK_TEST_PROMETHEUS_SCRAPE_INTERVAL": "1s",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    prometheus_server.process(load_config("test")).stop()


def devstack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", "--profile", "test", *args],
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_configuration_points_the_deployed_jobs_and_rules_at_the_local_stack(
    stack_env: dict[str, str],
) -> None:
    config = load_config("test")
    generated = prometheus_server.generate_config(config)
    deployed = yaml.safe_load(prometheus_server.SOURCE_CONFIG.read_text(encoding="utf-8"))

    assert generated["global"]["external_labels"] == deployed["global"]["external_labels"]
    assert generated["global"]["scrape_interval"] == "1s"
    assert generated["rule_files"] == [str(RULES / "*.yml")]
    assert {
        job["job_name"]: job["static_configs"][0]["targets"] for job in generated["scrape_configs"]
    } == {
        "prometheus": [f"127.0.0.1:{config.prometheus_port}"],
        **{job: [f"127.0.0.1:{services.port(config, job)}"] for job in SERVICE_JOBS},
    }
    assert {job["job_name"] for job in deployed["scrape_configs"]} == {
        "prometheus",
        *SERVICE_JOBS,
    }, "a job devstack does not run: map it in devstack/prometheus_server.py"


def test_prometheus_loads_the_rules_scrapes_a_service_and_sees_the_others_down(
    stack_env: dict[str, str],
) -> None:
    config = load_config("test")
    # A stand-in for intake: its /metrics on intake's port. The other services do not run.
    registry = CollectorRegistry()
    Counter("dvc_stand_in_requests", "A sample metric.", registry=registry).inc()
    server, thread = start_http_server(
        services.port(config, "intake"), addr="127.0.0.1", registry=registry
    )
    try:
        start_monitoring(config)
        assert prometheus_server.process(config).pid() is not None

        groups = api(config, "/api/v1/rules")["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        expected = {
            rule.get("alert") or rule["record"]
            for path in RULES.glob("*.yml")
            for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
            for rule in group["rules"]
        }
        assert loaded == expected
        assert {"ServiceDown", "ConsumerLagHigh", "DeadLettersGrowing"} <= loaded

        expected_up = {"prometheus": "1", "intake": "1", **dict.fromkeys(SERVICE_JOBS[1:], "0")}
        eventually(lambda: up_by_job(config) == expected_up, 30, f"up == {expected_up}")
        stand_in = api(config, "/api/v1/query", query="dvc_stand_in_requests_total")["result"]
        assert [s["metric"]["job"] for s in stand_in] == ["intake"]

        # ServiceDown (for: 2m) is pending for every service that is down, not for intake.
        def pending() -> set[str]:
            alerts = api(config, "/api/v1/alerts")["alerts"]
            return {a["labels"]["job"] for a in alerts if a["labels"]["alertname"] == "ServiceDown"}

        eventually(lambda: pending() == set(SERVICE_JOBS[1:]), 30, "ServiceDown pending")

        start_monitoring(config)  # a second `up --with-monitoring` reloads, keeps the process
        status = devstack(stack_env, "status")
        assert f"127.0.0.1:{config.prometheus_port}" in status.stdout
        [row] = [line for line in status.stdout.splitlines() if line.startswith("prometheus")]
        assert row.split()[1:3] == ["running", str(prometheus_server.process(config).pid())]
    finally:
        server.shutdown()
        thread.join(timeout=5)

    down = devstack(stack_env, "down")
    assert down.returncode == 0, down.stderr
    assert "stopped prometheus" in down.stdout
    assert prometheus_server.process(config).pid() is None

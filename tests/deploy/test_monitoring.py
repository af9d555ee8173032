"""Alert rules and dashboards: promtool accepts and unit-tests the rules, every alert links to its
section of the runbook (rendered by a real Prometheus from the configured base), and every metric a
rule or a panel queries is one the code exports."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY, CollectorRegistry

from tests.deploy.tools import ROOT, promtool, run

RULES = ROOT / "deploy" / "prometheus" / "rules"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# Every alert's runbook_url: the base is an external label of the evaluating Prometheus
# (docs/deployment.md, "Runbook links"), the anchor the alert's name in lower case.
RUNBOOK_URL = "{{ $externalLabels.runbook_base }}/docs/runbook.md#"  # + the anchor
METRIC_MODULES = ("shared.runtime.metrics", "shared.runtime.auth.dependencies")
# Exported by something other than the services' code.
EXTERNAL_METRICS = {
    "up": "Prometheus itself, per scrape target",
}
# Grafana's built-in interval variables, replaced by a sample value before parsing.
GRAFANA_VARIABLES = re.compile(r"\$__(rate_interval|interval|range)\b")
SUFFIXES = ("", "_total", "_created", "_bucket", "_count", "_sum", "_info")


def rule_groups() -> list[dict[str, Any]]:
    return [
        group
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every rule and every dashboard query."""
    for group in rule_groups():
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            yield f"rule {group['name']}/{name}", rule["expr"]
    for file, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield f"{file} panel {panel['title']!r}", target["expr"]
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]
                query = query["query"] if isinstance(query, dict) else query
                yield f"{file} variable {variable['name']}", query


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(m.value for m in node.matchers.matchers if m.name == "__name__")

    promql_parser.walk(promql_parser.parse(GRAFANA_VARIABLES.sub("5m", expr)), visit)
    return names


def service_metric_modules() -> list[str]:
    found = sorted(p.parent.name for p in (ROOT / "services").glob("*/metrics.py"))
    return [*METRIC_MODULES, *(f"services.{name}.metrics" for name in found)]


def exported_metric_names() -> set[str]:
    """Every sample name the services can expose: the metric modules' collectors in the default
    registry, FastStream's middleware metrics, and the recording rules' outputs."""
    for module in service_metric_modules():
        importlib.import_module(module)
    families = [family.name for family in REGISTRY.collect()]
    faststream = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=faststream)
    families += [family.name for family in faststream.collect()]
    exported = {family + suffix for family in families for suffix in SUFFIXES}
    recorded = {r["record"] for group in rule_groups() for r in group["rules"] if "record" in r}
    return exported | recorded | set(EXTERNAL_METRICS)


def test_promtool_accepts_the_rules() -> None:
    result = run([promtool(), "check", "rules", *sorted(RULES.glob("*.yml"))])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass() -> None:
    tests = sorted(RULE_TESTS.glob("*.yml"))
    assert tests, "no promtool rule tests in deploy/prometheus/tests/"
    result = run([promtool(), "test", "rules", *tests])
    assert result.returncode == 0, result.stdout + result.stderr


def test_consumer_lag_watches_every_platform_group() -> None:
    """ConsumerLagHigh names every consumer group of shared/contracts/topics.py (notification's
    public-stream, webhook and portal groups too), and nothing else: agencies' groups are
    `<agency>-…`, theirs to watch."""
    from shared.contracts.topics import GROUP_SERVICE

    [alert] = [rule for rule in alerts() if rule["alert"] == "ConsumerLagHigh"]
    match = re.search(r'consumergroup=~"([^"]+)"', alert["expr"])
    assert match, alert["expr"]
    groups = match.group(1).split("|")
    assert all(re.fullmatch(r"[\w-]+", group) for group in groups), "names, not patterns"
    assert set(groups) == set(GROUP_SERVICE)


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    tested_files: set[str] = set()
    cases: dict[str, set[str]] = {}  # alert -> {"fires", "silent"}
    for path in RULE_TESTS.glob("*.yml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        tested_files.update(Path(f).name for f in spec["rule_files"])
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "fires" if case.get("exp_alerts") else "silent"
                cases.setdefault(case["alertname"], set()).add(kind)
    assert {p.name for p in RULES.glob("*.yml")} <= tested_files
    incomplete = {
        alert["alert"]: sorted({"fires", "silent"} - cases.get(alert["alert"], set()))
        for alert in alerts()
        if cases.get(alert["alert"]) != {"fires", "silent"}
    }
    assert not incomplete, f"alerts missing promtool cases: {incomplete}"


def test_every_alert_is_labelled_annotated_and_has_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    }
    names = [alert["alert"] for alert in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for alert in alerts():
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        anchor = alert["alert"].lower()
        assert annotations["runbook_url"] == RUNBOOK_URL + anchor, alert["alert"]
        assert anchor in anchors, f"{alert['alert']}: no section #{anchor} in docs/runbook.md"


def runbook_base() -> str:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    return config["global"]["external_labels"]["runbook_base"]


def test_the_runbook_base_is_an_absolute_address() -> None:
    base = runbook_base()
    assert re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", base), base
    assert not base.endswith("/"), "runbook_base must not end with '/': the rules add it"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_real_prometheus_renders_every_runbook_link_from_the_configured_base(
    tmp_path: Path,
) -> None:
    """Each alert's runbook_url, as written, in a rule that always fires, evaluated by a
    Prometheus server under the external labels of deploy/prometheus/prometheus.yml."""
    server = shutil.which("prometheus")
    if server is None:
        pytest.fail(
            "the prometheus server is not on PATH (Debian's prometheus package brings it with "
            "promtool): run scripts/install-deploy-tools or apt-get install prometheus",
            pytrace=False,
        )
    wanted = {a["alert"]: a["annotations"]["runbook_url"] for a in alerts()}
    rules = {
        "groups": [
            {
                "name": "runbook-links",
                "interval": "1s",
                "rules": [
                    {"alert": name, "expr": "vector(1)", "annotations": {"runbook_url": url}}
                    for name, url in wanted.items()
                ],
            }
        ]
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    external_labels = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))["global"][
        "external_labels"
    ]
    config = {
        "global": {"evaluation_interval": "1s", "external_labels": external_labels},
        "rule_files": [str(tmp_path / "rules.yml")],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    command = [
        server,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    rendered: dict[str, str] = {}
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while len(rendered) < len(wanted) and time.monotonic() < deadline:
                assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
                time.sleep(0.5)
                try:
                    url = f"http://127.0.0.1:{port}/api/v1/alerts"
                    with urllib.request.urlopen(url, timeout=5) as response:
                        body = json.load(response)
                except OSError:
                    continue  # not listening yet
                rendered = {
                    a["labels"]["alertname"]: a["annotations"]["runbook_url"]
                    for a in body["data"]["alerts"]
                }
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    base = runbook_base()
    assert rendered == {name: f"{base}/docs/runbook.md#{name.lower()}" for name in wanted}


def test_dashboards_query_the_provisioned_datasource() -> None:
    [source] = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    boards = dashboards()
    titles = {"Availability", "Security", "Dossier flow and deadlines", "Quarterly roll-up"}
    assert {board["title"].removeprefix("DVC — ") for board in boards.values()} >= titles
    uids = [board["uid"] for board in boards.values()]
    assert len(uids) == len(set(uids)), "duplicate dashboard uids"
    for file, board in boards.items():
        assert board["schemaVersion"] >= 36, file
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{file}: duplicate panel ids"
        for panel in panels(board):
            for target in panel.get("targets", []):
                datasource = target.get("datasource") or panel.get("datasource")
                assert datasource == {"type": "prometheus", "uid": source["uid"]}, (
                    f"{file} panel {panel['title']!r}"
                )


def test_every_queried_metric_is_exported() -> None:
    exported = exported_metric_names()
    unknown: dict[str, set[str]] = {}
    for where, expr in expressions():
        try:
            names = metric_names(expr)
        except ValueError as error:
            pytest.fail(f"{where}: invalid PromQL {expr!r}: {error}")
        assert names, f"{where}: queries no metric"
        if missing := names - exported:
            unknown[where] = missing
    assert not unknown, f"metrics nobody exports: {unknown}"


def test_the_check_sees_what_it_is_meant_to_catch() -> None:
    """The helpers find names in every selector form and reject Grafana-only syntax."""
    found = metric_names(
        'sum(rate(a_total{x="1"}[$__rate_interval])) / on() b + {__name__="c"}'
        " + max_over_time(d[1h:5m])"
    )
    assert found == {"a_total", "b", "c", "d"}
    assert "dvc_no_such_metric_total" not in exported_metric_names()
    with pytest.raises(ValueError):
        metric_names("rate(a[$unknown_variable])")

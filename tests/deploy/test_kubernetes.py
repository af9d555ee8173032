"""The rendered kustomize output: schema-valid, secure, complete for every service."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

from tests.deploy.conftest import K8S, TARGETS
from tests.deploy.tools import DATA_SERVICES, KUBERNETES_VERSION, PORTAL_CALLS, ROOT, SERVICES

Doc = dict[str, Any]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
PINNED_IMAGE = re.compile(r"^[\w.\-/:]+:\d+\.\d+\.\d+[\w.\-]*(@sha256:[0-9a-f]{64})?$")
# The portal is ready when it serves: with intake down it shows its own Vietnamese 503 page
# rather than leave every pod out of the load balancing (deploy/k8s/generate.py).
READINESS_PATH = {"portal": "/health/live"}


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc, doc["spec"]["template"]["spec"]


def all_targets() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("target", TARGETS)


def test_every_overlay_is_rendered_by_the_tests() -> None:
    overlays = {f"overlays/{p.name}" for p in (K8S / "overlays").iterdir() if p.is_dir()}
    assert overlays <= set(TARGETS)
    assert "overlays/production" in overlays


# --- schema validation ---------------------------------------------------------------------


@all_targets()
def test_builtin_kinds_validate_strictly(rendered: dict[str, list[Doc]], target: str) -> None:
    """Built-in kinds against the Kubernetes schemas, unknown fields rejected.

    kubernetes-validate has no schema for custom resources (Strimzi, Prometheus Operator); those
    are checked field by field in test_custom_resources_have_their_required_fields.
    """
    errors, custom = [], set()
    for doc in rendered[target]:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except SchemaNotFoundError:
            custom.add(doc["kind"])
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)
    assert custom <= CUSTOM_CHECKS.keys(), (
        f"custom kinds without a check: {custom - CUSTOM_CHECKS.keys()}"
    )


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, list[Doc]]) -> None:
    deployment = copy.deepcopy(named(rendered["overlays/production"], "Deployment", "intake"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _check_kafka(doc: Doc) -> list[str]:
    annotations = doc["metadata"].get("annotations", {})
    spec = doc.get("spec", {})
    kafka = spec.get("kafka", {})
    problems = []
    if annotations.get("strimzi.io/kraft") != "enabled":
        problems.append("not in KRaft mode (strimzi.io/kraft: enabled)")
    if annotations.get("strimzi.io/node-pools") != "enabled":
        problems.append("node pools not enabled (strimzi.io/node-pools: enabled)")
    if "zookeeper" in spec:
        problems.append("has a ZooKeeper section")
    if not str(kafka.get("version", "")).startswith("4."):
        problems.append("spec.kafka.version is not 4.x")
    for listener in kafka.get("listeners") or [None]:
        if not listener or not {"name", "port", "type", "tls"} <= listener.keys():
            problems.append(f"listener without name/port/type/tls: {listener}")
        elif listener.get("authentication", {}).get("type") not in {"scram-sha-512", "tls"}:
            problems.append(f"listener {listener['name']} lets clients in unauthenticated")
    if kafka.get("authorization", {}).get("type") != "simple":
        problems.append("no ACL authorization (spec.kafka.authorization.type: simple)")
    operators = spec.get("entityOperator", {})
    if "topicOperator" not in operators or "userOperator" not in operators:
        problems.append("entityOperator needs topicOperator and userOperator")
    return problems


def _check_node_pool(doc: Doc) -> list[str]:
    spec = doc.get("spec", {})
    problems = []
    if "strimzi.io/cluster" not in doc["metadata"].get("labels", {}):
        problems.append("no strimzi.io/cluster label")
    if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 1:
        problems.append("spec.replicas must be a positive integer")
    if not spec.get("roles") or not set(spec["roles"]) <= {"controller", "broker"}:
        problems.append("spec.roles must be controller and/or broker")
    if spec.get("storage", {}).get("type") not in {"jbod", "persistent-claim", "ephemeral"}:
        problems.append("spec.storage.type missing or unknown")
    if not {"requests", "limits"} <= spec.get("resources", {}).keys():
        problems.append("no resource requests and limits")
    return problems


def _check_topic(doc: Doc) -> list[str]:
    spec = doc.get("spec", {})
    problems = []
    if "strimzi.io/cluster" not in doc["metadata"].get("labels", {}):
        problems.append("no strimzi.io/cluster label")
    for field in ("partitions", "replicas"):
        if not isinstance(spec.get(field), int) or spec[field] < 1:
            problems.append(f"spec.{field} must be a positive integer")
    if not spec.get("topicName"):
        problems.append("no spec.topicName")
    return problems


ACL_OPERATIONS = {
    "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
    "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All",
}  # fmt: skip


def _check_user(doc: Doc) -> list[str]:
    spec = doc.get("spec", {})
    problems = []
    if "strimzi.io/cluster" not in doc["metadata"].get("labels", {}):
        problems.append("no strimzi.io/cluster label")
    if spec.get("authentication", {}).get("type") not in {"scram-sha-512", "tls", "tls-external"}:
        problems.append("spec.authentication.type missing or unknown")
    authorization = spec.get("authorization", {})
    if authorization.get("type") != "simple" or not authorization.get("acls"):
        problems.append("needs spec.authorization of type simple with acls")
    for acl in authorization.get("acls", []):
        resource = acl.get("resource", {})
        if resource.get("type") not in {"topic", "group", "cluster", "transactionalId"}:
            problems.append(f"ACL resource type unknown: {resource}")
        if resource.get("type") != "cluster" and not resource.get("name"):
            problems.append(f"ACL resource without a name: {resource}")
        if resource.get("patternType", "literal") not in {"literal", "prefix"}:
            problems.append(f"ACL patternType unknown: {resource}")
        if not acl.get("operations") or not set(acl["operations"]) <= ACL_OPERATIONS:
            problems.append(f"ACL operations missing or unknown: {acl.get('operations')}")
    return problems


def _check_service_monitor(doc: Doc) -> list[str]:
    spec = doc.get("spec", {})
    problems = []
    if not spec.get("selector", {}).get("matchLabels"):
        problems.append("no spec.selector.matchLabels")
    if not spec.get("endpoints") or not all("port" in e for e in spec["endpoints"]):
        problems.append("spec.endpoints must name a port each")
    return problems


def _check_prometheus_rule(doc: Doc) -> list[str]:
    groups = doc.get("spec", {}).get("groups")
    if not groups:
        return ["no spec.groups"]
    problems = []
    for group in groups:
        if not group.get("name") or not group.get("rules"):
            problems.append(f"group without name or rules: {group.get('name')}")
        for rule in group.get("rules", []):
            if not rule.get("expr") or not (rule.get("alert") or rule.get("record")):
                problems.append(f"rule without expr and alert/record: {rule}")
    return problems


CUSTOM_CHECKS = {
    "Kafka": _check_kafka,
    "KafkaNodePool": _check_node_pool,
    "KafkaTopic": _check_topic,
    "KafkaUser": _check_user,
    "ServiceMonitor": _check_service_monitor,
    "PrometheusRule": _check_prometheus_rule,
}

CUSTOM_API_VERSIONS = {
    "Kafka": "kafka.strimzi.io/v1beta2",
    "KafkaNodePool": "kafka.strimzi.io/v1beta2",
    "KafkaTopic": "kafka.strimzi.io/v1beta2",
    "KafkaUser": "kafka.strimzi.io/v1beta2",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}


@all_targets()
def test_custom_resources_have_their_required_fields(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    problems = []
    for doc in rendered[target]:
        check = CUSTOM_CHECKS.get(doc["kind"])
        if check is None:
            continue
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] != CUSTOM_API_VERSIONS[doc["kind"]]:
            problems.append(f"{where}: apiVersion {doc['apiVersion']}")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"]):
            problems.append(f"{where}: not a valid Kubernetes name")
        problems += [f"{where}: {p}" for p in check(doc)]
    assert not problems, "\n".join(problems)
    kinds = {doc["kind"] for doc in rendered[target]}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"} <= kinds
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds


def test_node_pools_give_kraft_controllers_and_brokers(rendered: dict[str, list[Doc]]) -> None:
    pools = by_kind(rendered["overlays/production"], "KafkaNodePool")
    kafka = by_kind(rendered["overlays/production"], "Kafka")
    assert len(kafka) == 1
    assert all(
        p["metadata"]["labels"]["strimzi.io/cluster"] == kafka[0]["metadata"]["name"] for p in pools
    )
    roles = {
        role: sum(p["spec"]["replicas"] for p in pools if role in p["spec"]["roles"])
        for role in ("controller", "broker")
    }
    assert roles["controller"] >= 3 and roles["controller"] % 2 == 1, (
        "a KRaft quorum needs an odd count ≥ 3"
    )
    assert roles["broker"] >= 3, "topics are replicated three times"


# --- workload invariants -------------------------------------------------------------------


def _security_problems(container: Doc, pod: Doc) -> list[str]:
    ctx = container.get("securityContext", {})
    pod_ctx = pod.get("securityContext", {})
    problems = []
    if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
        problems.append("runAsNonRoot is not true")
    if 0 in (ctx.get("runAsUser"), pod_ctx.get("runAsUser")):
        problems.append("runs as uid 0")
    if ctx.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is writable")
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
        problems.append("capabilities are not all dropped")
    if ctx.get("capabilities", {}).get("add"):
        problems.append("adds capabilities")
    seccomp = ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("no RuntimeDefault seccomp profile")
    if ctx.get("privileged"):
        problems.append("privileged")
    return problems


@all_targets()
def test_every_container_is_limited_probed_and_locked_down(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    problems = []
    for workload, pod in pod_specs(rendered[target]):
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= resources.get(part, {}).keys():
                    problems.append(f"{where}: no cpu and memory {part}")
            is_long_running = workload["kind"] != "Job" and container in pod["containers"]
            if is_long_running and not {"livenessProbe", "readinessProbe"} <= container.keys():
                problems.append(f"{where}: needs liveness and readiness probes")
            problems += [f"{where}: {p}" for p in _security_problems(container, pod)]
            if not PINNED_IMAGE.match(container["image"]):
                problems.append(f"{where}: image {container['image']} is not pinned to a version")
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if container["name"] != "keyfile" and "/tmp" not in mounts:
                problems.append(f"{where}: read-only root filesystem but no writable /tmp")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{workload['metadata']['name']}: shares a host namespace")
    assert not problems, "\n".join(problems)


@all_targets()
def test_every_service_has_its_workload_set(rendered: dict[str, list[Doc]], target: str) -> None:
    docs = rendered[target]
    for service in SERVICES:
        deployment = named(docs, "Deployment", service)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == READINESS_PATH.get(
            service, "/health/ready"
        )

        def selects(selector: Doc, pod_labels: Doc = labels) -> bool:
            return all(pod_labels.get(k) == v for k, v in selector.items())

        svc = named(docs, "Service", service)
        assert selects(svc["spec"]["selector"])
        hpa = named(docs, "HorizontalPodAutoscaler", service)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": service,
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pdb = named(docs, "PodDisruptionBudget", service)
        assert selects(pdb["spec"]["selector"]["matchLabels"])
        monitor = named(docs, "ServiceMonitor", service)
        assert selects(monitor["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        policy = named(docs, "NetworkPolicy", service)
        assert selects(policy["spec"]["podSelector"]["matchLabels"])


@all_targets()
def test_everything_lives_in_one_namespace(rendered: dict[str, list[Doc]], target: str) -> None:
    docs = rendered[target]
    namespaces = by_kind(docs, "Namespace")
    assert len(namespaces) == 1
    name = namespaces[0]["metadata"]["name"]
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {name}


# --- network policies ----------------------------------------------------------------------


def test_traffic_is_denied_unless_allowed(rendered: dict[str, list[Doc]]) -> None:
    policies = by_kind(rendered["overlays/production"], "NetworkPolicy")
    default = [p for p in policies if p["spec"]["podSelector"] == {}]
    deny = [p for p in default if "ingress" not in p["spec"] and "egress" not in p["spec"]]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    # Every policy that selects all pods only opens DNS.
    for policy in default:
        for rule in policy["spec"].get("egress", []):
            assert {p["port"] for p in rule["ports"]} == {53}


def _egress_ports(policy: Doc) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}


def test_services_reach_only_kafka_mongodb_and_what_they_need(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/production"]
    for service in SERVICES:
        policy = named(docs, "NetworkPolicy", service)
        internet = [
            rule
            for rule in policy["spec"]["egress"]
            if any("ipBlock" in peer for peer in rule.get("to", []))
        ]
        # Every service reaches the identity provider over HTTPS (JWKS; the portal: sign-in).
        # The portal: intake's, reporting's and (the officers' workspace) processing's APIs and
        # the provider (DNS: network/dns.yaml).
        if service == "portal":
            assert _egress_ports(policy) == {8000, 443}
            calls = policy["spec"]["egress"][: len(PORTAL_CALLS)]
            assert [rule["to"] for rule in calls] == [
                [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "intake"}}}],
                [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "reporting"}}}],
                [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "processing"}}}],
            ]
            assert all(rule["ports"] == [{"protocol": "TCP", "port": 8000}] for rule in calls)
            assert len(policy["spec"]["egress"]) == len(PORTAL_CALLS) + 1, "and the provider"
            assert len(internet) == 1
            assert [p["port"] for p in internet[0]["ports"]] == [443]
        elif service == "notification":  # SMTP submission, SMS gateway and webhooks over HTTPS
            assert _egress_ports(policy) == {9093, 27017, 443, 587}
            assert len(internet) == 1
            assert "10.0.0.0/8" in internet[0]["to"][0]["ipBlock"]["except"]
        elif service == "intake":  # the payment platform over HTTPS, processing's results
            assert _egress_ports(policy) == {9093, 27017, 443, 8000}
            assert len(internet) == 1
            assert "169.254.0.0/16" in internet[0]["to"][0]["ipBlock"]["except"]
        else:
            assert _egress_ports(policy) == {9093, 27017, 443}
            assert len(internet) == 1
            assert [p["port"] for p in internet[0]["ports"]] == [443]
        if internet:
            assert "10.0.0.0/8" in internet[0]["to"][0]["ipBlock"]["except"]
        for rule in policy["spec"]["egress"]:
            assert rule.get("to"), f"{service}: an egress rule open to every destination"
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{service}: an ingress rule open to every source"
            assert [p["port"] for p in rule["ports"]] == ["http"]
        sources = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for rule in policy["spec"]["ingress"]
            for peer in rule["from"]
        }
        assert "prometheus" in sources
    for service in ("intake", "portal"):
        sources = named(docs, "NetworkPolicy", service)["spec"]["ingress"]
        assert any(
            peer.get("namespaceSelector", {})
            .get("matchLabels", {})
            .get("kubernetes.io/metadata.name")
            == "ingress-nginx"
            for rule in sources
            for peer in rule["from"]
        )


def _sources(policy: Doc) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
    }


def test_the_portal_is_reached_from_the_ingress_and_reaches_what_it_calls(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/production"]
    assert _sources(named(docs, "NetworkPolicy", "portal")) == {"ingress-nginx", "prometheus"}
    assert _sources(named(docs, "NetworkPolicy", "intake")) == {
        "ingress-nginx",
        "prometheus",
        "portal",
    }
    assert "portal" in _sources(named(docs, "NetworkPolicy", "reporting"))  # public figures
    # the officers' workspace; intake fetches result documents
    assert _sources(named(docs, "NetworkPolicy", "processing")) == {
        "ingress-nginx",
        "prometheus",
        "intake",
        "portal",
    }
    assert "portal" not in _sources(named(docs, "NetworkPolicy", "notification"))
    pod = named(docs, "Deployment", "portal")["spec"]["template"]
    assert not {"dvc.most.gov.vn/kafka-client", "dvc.most.gov.vn/mongodb-client"} & set(
        pod["metadata"]["labels"]
    )
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for service in PORTAL_CALLS:  # the Services' names and port
        assert env[f"DVC_PORTAL_{service.upper()}_BASE_URL"]["value"] == f"http://{service}:8000"
    assert env["DVC_PORTAL_COOKIE_SECURE"]["value"] == "true"
    assert env["DVC_PORTAL_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "portal-secrets",
        "key": "secret-key",
    }
    assert not any(re.search(r"KAFKA|MONGO|JWT", name) for name in env)
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"tmp"}, "no Kafka CA, no JWT key"


def test_mongodb_admits_only_its_clients(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/production"]
    policy = named(docs, "NetworkPolicy", "mongodb")
    client_label = "dvc.most.gov.vn/mongodb-client"
    allowed = [
        p["podSelector"]["matchLabels"] for r in policy["spec"]["ingress"] for p in r["from"]
    ]
    assert allowed == [{client_label: "true"}, {"app.kubernetes.io/name": "mongodb"}]
    clients = {
        w["metadata"]["name"]
        for w, _ in pod_specs(docs)
        if w["spec"]["template"]["metadata"]["labels"].get(client_label) == "true"
    }
    assert clients == {*DATA_SERVICES, "mongodb-init"}


# --- MongoDB -------------------------------------------------------------------------------


def test_mongodb_is_a_three_member_replica_set(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/production"]
    statefulset = named(docs, "StatefulSet", "mongodb")
    assert statefulset["spec"]["replicas"] == 3
    headless = named(docs, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    command = " ".join(statefulset["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "--replSet rs0" in command and "--keyFile" in command
    hosts = named(docs, "ConfigMap", next(
        c["metadata"]["name"] for c in by_kind(docs, "ConfigMap")
        if c["metadata"]["name"].startswith("dvc-platform")
    ))["data"]["mongodb-hosts"].split(",")  # fmt: skip
    assert hosts == [f"mongodb-{i}.mongodb:27017" for i in range(3)]


# --- secrets and configuration -------------------------------------------------------------


@all_targets()
def test_no_secret_is_committed(rendered: dict[str, list[Doc]], target: str) -> None:
    secrets = by_kind(rendered[target], "Secret")
    assert all(not s.get("data") and not s.get("stringData") for s in secrets)
    for path in (ROOT / "deploy" / "k8s").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "secretGenerator" not in text, f"{path}: secrets must not be generated from files"
        assert not re.search(r"^kind:\s*Secret\s*$", text, re.MULTILINE), f"{path} has a Secret"


def _referenced_secrets(docs: list[Doc]) -> set[str]:
    names = {
        tls["secretName"]
        for ingress in by_kind(docs, "Ingress")
        for tls in ingress["spec"].get("tls", [])
    }
    for _, pod in pod_specs(docs):
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
        for container in pod.get("initContainers", []) + pod["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
    return names


def test_every_secret_referenced_is_made_by_strimzi_or_documented(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/production"]
    kafka = by_kind(docs, "Kafka")[0]["metadata"]["name"]
    from_strimzi = {u["metadata"]["name"] for u in by_kind(docs, "KafkaUser")}
    from_strimzi.add(f"{kafka}-cluster-ca-cert")
    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    undocumented = {
        name for name in _referenced_secrets(docs) - from_strimzi if f"`{name}`" not in guide
    }
    assert not undocumented, f"docs/deployment.md must say how to create: {sorted(undocumented)}"


def test_production_runs_a_released_image_in_production_mode(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/production"]
    config = next(
        c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("dvc-platform")
    )
    assert config["data"]["environment"] == "production"
    assert "example" not in config["data"]["jwt-issuer"]
    assert "example" not in config["data"]["jwt-jwks-url"]
    for service in SERVICES:
        image = named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        assert "example" not in image and not image.endswith(":latest")


# --- the public entry ----------------------------------------------------------------------


def _routes(docs: list[Doc]) -> dict[tuple[str, str], tuple[str, Doc]]:
    """(host, path) -> (Service name, the Ingress) over every Ingress."""
    routes = {}
    for ingress in by_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                key = (rule["host"], path["path"])
                assert key not in routes, f"{key} routed twice"
                assert path["pathType"] in {"Prefix", "Exact"}
                routes[key] = (path["backend"]["service"]["name"], ingress)
    return routes


def _route(routes: dict[tuple[str, str], tuple[str, Doc]], host: str, url: str) -> str:
    """The Service the longest matching prefix sends `url` to (path elements, as Kubernetes)."""
    matches = [
        (len(path), service)
        for (route_host, path), (service, _) in routes.items()
        if route_host == host
        and (path == "/" or url == path.rstrip("/") or url.startswith(path.rstrip("/") + "/"))
    ]
    return max(matches)[1] if matches else ""


@all_targets()
def test_the_ingress_sends_root_to_the_portal_and_api_to_intake(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    docs = rendered[target]
    routes = _routes(docs)
    [host] = {host for host, _ in routes}
    for ingress in by_kind(docs, "Ingress"):
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert [tls["hosts"] for tls in ingress["spec"]["tls"]] == [[host]], "HTTPS only"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = named(docs, "Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert _route(routes, host, "/") == "portal"
    assert _route(routes, host, "/thu-tuc/1.000001") == "portal"
    assert _route(routes, host, "/static/portal.css") == "portal"
    assert _route(routes, host, "/api/v1/procedures") == "intake"
    assert _route(routes, host, "/api/v1/dossiers/ABC/receipt") == "intake"
    # only the portal and intake's API are public
    assert {service for service, _ in routes.values()} == {"portal", "intake"}


def test_the_portal_s_operational_routes_are_refused_at_the_ingress(
    rendered: dict[str, list[Doc]],
) -> None:
    routes = _routes(rendered["overlays/production"])
    [host] = {host for host, _ in routes}
    for url in ("/metrics", "/health/live", "/health/ready"):
        service, ingress = max(
            (len(path), routes[(host, path)])
            for (_, path) in routes
            if path != "/" and (url == path or url.startswith(path.rstrip("/") + "/"))
        )[1]
        annotations = ingress["metadata"]["annotations"]
        assert service == "portal"
        assert annotations["nginx.ingress.kubernetes.io/allowlist-source-range"] == "127.0.0.1/32"
        assert annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] == "127.0.0.1/32"


def test_uploads_fit_through_the_ingress(rendered: dict[str, list[Doc]]) -> None:
    """nginx's default body limit (1 MiB) would refuse a dossier with its own page."""
    from services.intake.settings import IntakeSettings
    from services.portal.settings import PortalSettings

    docs = rendered["overlays/production"]
    mebibytes = {
        ingress["metadata"]["name"]: int(
            ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"][:-1]
        )
        for ingress in by_kind(docs, "Ingress")
        if "nginx.ingress.kubernetes.io/proxy-body-size" in ingress["metadata"]["annotations"]
    }
    portal, intake = PortalSettings(), IntakeSettings()
    assert mebibytes["portal"] * 2**20 >= 2 * portal.max_dossier_bytes, "the portal's own limit"
    assert mebibytes["intake-api"] * 2**20 > intake.max_dossier_bytes
    read_timeout = named(docs, "Ingress", "portal")["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-read-timeout"
    ]
    assert int(read_timeout) > portal.intake_upload_timeout_seconds


@all_targets()
def test_the_portal_s_public_url_is_the_ingress_host(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    docs = rendered[target]
    config = next(
        c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("dvc-platform")
    )
    [host] = {host for host, _ in _routes(docs)}
    assert config["data"]["portal-public-url"] == f"https://{host}"


@all_targets()
def test_trusted_proxies_are_the_same_networks_for_every_service(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    """The services believe X-Forwarded-For from the pod network: the ingress controller's and
    the portal's (when it calls intake). The portal reads a JSON list, the others a
    comma-separated one: the two keys must name the same networks."""
    config = next(
        c
        for c in by_kind(rendered[target], "ConfigMap")
        if c["metadata"]["name"].startswith("dvc-platform")
    )["data"]
    networks = [n.strip() for n in config["trusted-proxies"].split(",") if n.strip()]
    assert networks
    assert json.loads(config["portal-trusted-proxies"]) == networks
    for service in SERVICES:
        [container] = named(rendered[target], "Deployment", service)["spec"]["template"]["spec"][
            "containers"
        ]
        [variable] = [e for e in container["env"] if e["name"].endswith("_TRUSTED_PROXIES")]
        key = variable["valueFrom"]["configMapKeyRef"]["key"]
        assert key == ("portal-trusted-proxies" if service == "portal" else "trusted-proxies")


# --- the identity provider -----------------------------------------------------------------


def _platform_config(docs: list[Doc]) -> dict[str, str]:
    return next(
        c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("dvc-platform")
    )["data"]


def _env(docs: list[Doc], service: str) -> dict[str, Doc]:
    [container] = named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable for variable in container["env"]}


def _config_ref(variable: Doc) -> str:
    return variable["valueFrom"]["configMapKeyRef"]["key"]


@all_targets()
def test_the_configmap_names_the_provider_s_issuer_and_jwks(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    config = _platform_config(rendered[target])
    issuer, jwks = config["jwt-issuer"], config["jwt-jwks-url"]
    assert issuer.startswith("https://") and jwks.startswith("https://")
    assert jwks == f"{issuer}/protocol/openid-connect/certs", "the same realm"
    assert config["oidc-client-id"]


@all_targets()
def test_every_service_verifies_tokens_with_the_provider_s_jwks(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    docs = rendered[target]
    for service in DATA_SERVICES:
        env = _env(docs, service)
        prefix = f"DVC_{service.upper()}_"
        assert _config_ref(env[f"{prefix}JWT_ISSUER"]) == "jwt-issuer"
        assert _config_ref(env[f"{prefix}JWT_JWKS_URL"]) == "jwt-jwks-url"
        assert _config_ref(env[f"{prefix}JWT_AUDIENCE"]) == "jwt-audience"
        assert f"{prefix}JWT_PUBLIC_KEY_FILE" not in env, "a key file would win over the JWKS"
        volumes = named(docs, "Deployment", service)["spec"]["template"]["spec"]["volumes"]
        assert all(v.get("configMap", {}).get("name") != "dvc-jwt-public-key" for v in volumes)


@all_targets()
def test_the_portal_signs_staff_in_at_the_same_provider(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    env = _env(rendered[target], "portal")
    assert _config_ref(env["DVC_PORTAL_OIDC_ISSUER_URL"]) == "jwt-issuer"
    assert _config_ref(env["DVC_PORTAL_OIDC_CLIENT_ID"]) == "oidc-client-id"
    assert _config_ref(env["DVC_PORTAL_OIDC_REDIRECT_BASE_URL"]) == "portal-public-url"
    secret = env["DVC_PORTAL_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "portal-secrets", "key": "oidc-client-secret"}
    assert not any("JWT" in name for name in env), "the portal verifies no token itself"


def test_the_guide_says_how_to_point_at_the_ministry_s_provider() -> None:
    from services.portal.workspace.routes import CALLBACK, LOGGED_OUT

    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for needed in (
        "jwt-issuer",
        "jwt-jwks-url",
        "oidc-client-id",
        "oidc-client-secret",
        "PKCE",
        CALLBACK,
        LOGGED_OUT,
        "`unit`",
        "`roles`",
        "dvc-platform",
    ):
        assert needed in guide, f"docs/deployment.md does not mention {needed}"

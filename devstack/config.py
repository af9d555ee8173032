"""Where things live: ports, data folder and the per-user cache, all overridable by environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
FERRETDB_VERSION = "1.24.2"
KEYCLOAK_VERSION = "26.7.3"
# Toxiproxy (fault injection between the services and Kafka / the database): the newest version
# the Go module proxy serves under the module path github.com/Shopify/toxiproxy/v2.
TOXIPROXY_VERSION = "2.5.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEVSTACK_SOURCES = Path(__file__).resolve().parent

# The run profile serves the local platform; the test profile has its own ports and data so
# that running the tests never touches the run's data.
_PROFILE_DEFAULTS = {
    "run": {"kafka": 9092, "controller": 9093, "mongo": 27017, "postgres": 55432, "http": 8001},
    "test": {"kafka": 19092, "controller": 19093, "mongo": 37017, "postgres": 45432, "http": 18001},
}
# Prometheus, when started with `--with-monitoring` (devstack/prometheus_server.py).
_PROMETHEUS_PORTS = {"run": 9090, "test": 19090}
# Keycloak, when started with `--with-keycloak` (devstack/keycloak_server.py): HTTP, management.
_KEYCLOAK_PORTS = {"run": (8080, 9000), "test": (18080, 19000)}
# Toxiproxy's HTTP API, when started with `--with-toxiproxy` (devstack/toxiproxy_server.py).
_TOXIPROXY_PORTS = {"run": 8474, "test": 18474}
# A cluster's node n listens on the profile's Kafka and controller ports + this * (n - 1).
KAFKA_NODE_PORT_STEP = 100
# FerretDB's storage: PostgreSQL (filters and indexes pushed down) or SQLite (every query scans).
MONGO_BACKENDS = ("postgresql", "sqlite")


def cache_root() -> Path:
    """Downloads and builds, outside the checkout and shared by every clone of the project."""
    if explicit := os.environ.get("DEVSTACK_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dvc-platform"


@dataclass(frozen=True)
class StackConfig:
    profile: str
    data_dir: Path
    kafka_port: int
    controller_port: int
    mongo_port: int
    mongo_backend: str
    postgres_port: int
    http_base_port: int
    topic_partitions: int
    topic_retention_ms: int
    kafka_heap: str
    keycloak_port: int
    keycloak_management_port: int
    prometheus_port: int
    toxiproxy_port: int = _TOXIPROXY_PORTS["run"]
    # A second Kafka listener for clients that reach the broker through a proxy (the fault
    # suite's Toxiproxy): it listens on `kafka_proxied_port` and advertises
    # `kafka_proxied_advertised_port`, the proxy's, so that every connection a client makes after
    # the bootstrap goes through the proxy too. 0: no such listener (the default).
    kafka_proxied_port: int = 0
    kafka_proxied_advertised_port: int = 0
    # Brokers: 1 (broker and controller in one JVM), or a cluster as production runs it (3: a
    # three-voter KRaft quorum, replication factor 3, min.insync.replicas 2). Node n > 1 listens
    # on the Kafka and controller ports + 100 * (n - 1); see devstack/kafka_broker.py.
    kafka_brokers: int = 1
    # Which node of the cluster a config describes (devstack.kafka_broker.nodes).
    kafka_node_id: int = 1

    def env_name(self, setting: str) -> str:
        """The environment variable that overrides `setting` in this profile."""
        return ("DEVSTACK_TEST_" if self.profile == "test" else "DEVSTACK_") + setting

    @property
    def kafka_bootstrap(self) -> str:
        """The address clients start from: a cluster's first node (the services' settings take
        one address; they learn the other nodes from the cluster's metadata)."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def kafka_bootstrap_all(self) -> str:
        """Every node, comma-separated (aiokafka's clients take that): for tools that must start
        while any one node is down."""
        return ",".join(
            f"127.0.0.1:{self.kafka_port + KAFKA_NODE_PORT_STEP * n}"
            for n in range(self.kafka_brokers)
        )

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def kafka_libs(self) -> Path:
        return cache_root() / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def toxiproxy_binary(self) -> Path:
        return cache_root() / f"toxiproxy-{TOXIPROXY_VERSION}" / "toxiproxy-server"

    @property
    def ferretdb_binary(self) -> Path:
        # Keyed by the version and by our Go sources, so a change to them rebuilds.
        return (
            cache_root()
            / f"ferretdb-{FERRETDB_VERSION}-{_ferretdb_sources_digest()}"
            / "ferretdb-embedded"
        )


def load_config(profile: str) -> StackConfig:
    if profile not in _PROFILE_DEFAULTS:
        raise SystemExit(f"unknown profile {profile!r}: use 'run' or 'test'")
    defaults = _PROFILE_DEFAULTS[profile]
    prefix = "DEVSTACK_TEST_" if profile == "test" else "DEVSTACK_"  # see StackConfig.env_name

    def env_int(name: str, default: int) -> int:
        raw = os.environ.get(prefix + name)
        try:
            return int(raw) if raw else default
        except ValueError:
            raise SystemExit(f"{prefix}{name} must be an integer, got {raw!r}") from None

    mongo_backend = os.environ.get(prefix + "MONGO_BACKEND") or "postgresql"
    if mongo_backend not in MONGO_BACKENDS:
        raise SystemExit(
            f"{prefix}MONGO_BACKEND must be one of {MONGO_BACKENDS}, not {mongo_backend!r}"
        )
    if env_int("KAFKA_BROKERS", 1) not in (1, 3):
        raise SystemExit(f"{prefix}KAFKA_BROKERS must be 1 or 3 (a three-voter quorum)")
    data_dir = Path(
        os.environ.get(prefix + "DATA_DIR") or PROJECT_ROOT / ".devstack" / profile
    ).resolve()
    return StackConfig(
        profile=profile,
        data_dir=data_dir,
        kafka_port=env_int("KAFKA_PORT", defaults["kafka"]),
        controller_port=env_int("KAFKA_CONTROLLER_PORT", defaults["controller"]),
        mongo_port=env_int("MONGO_PORT", defaults["mongo"]),
        mongo_backend=mongo_backend,
        postgres_port=env_int("POSTGRES_PORT", defaults["postgres"]),
        http_base_port=env_int("HTTP_BASE_PORT", defaults["http"]),
        topic_partitions=env_int("TOPIC_PARTITIONS", 3),
        topic_retention_ms=env_int("TOPIC_RETENTION_MS", -1),
        kafka_heap=os.environ.get(prefix + "KAFKA_HEAP", "512m"),
        keycloak_port=env_int("KEYCLOAK_PORT", _KEYCLOAK_PORTS[profile][0]),
        keycloak_management_port=env_int("KEYCLOAK_MANAGEMENT_PORT", _KEYCLOAK_PORTS[profile][1]),
        prometheus_port=env_int("PROMETHEUS_PORT", _PROMETHEUS_PORTS[profile]),
        toxiproxy_port=env_int("TOXIPROXY_PORT", _TOXIPROXY_PORTS[profile]),
        kafka_brokers=env_int("KAFKA_BROKERS", 1),
    )


def _ferretdb_sources_digest() -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((DEVSTACK_SOURCES / "ferretdb").glob("*")):
        if path.suffix in {".go", ".mod", ".sum"}:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]

"""Apache Kafka from Maven Central jars: single-node KRaft (broker and controller in one JVM), or
a cluster of three such nodes as production runs it (`DEVSTACK_KAFKA_BROKERS=3`; test profile
`DEVSTACK_TEST_KAFKA_BROKERS=3`): a three-voter KRaft quorum, replication factor 3 and
`min.insync.replicas=2` (the Strimzi manifests), from the same jars on one machine.

A cluster's node n is a config of its own (`nodes`): its data in
`<data dir>/kafka-cluster/node<n>/kafka`, its ports the profile's + 100 * (n - 1) (test profile:
19092, 19192, 19292; controllers 19093, 19193, 19293), one cluster id for all.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from devstack.config import DEVSTACK_SOURCES, KAFKA_NODE_PORT_STEP, KAFKA_VERSION, StackConfig
from devstack.prerequisites import require_java, require_tool
from devstack.processes import DevstackError, ManagedProcess

MAIN_CLASS = "kafka.Kafka"


def nodes(config: StackConfig) -> list[StackConfig]:
    """The broker nodes of `config`: itself for a single broker, or one config per cluster node
    (`kafka_node_id`, data folder; the ports follow from the id, see `node_ports`)."""
    if config.kafka_brokers == 1:
        return [config]
    return [
        dataclasses.replace(
            config,
            kafka_node_id=n,
            data_dir=config.data_dir / "kafka-cluster" / f"node{n}",
        )
        for n in range(1, config.kafka_brokers + 1)
    ]


def node_ports(config: StackConfig, node_id: int | None = None) -> tuple[int, int]:
    """The client and controller ports of a node (by default the one `config` describes)."""
    offset = KAFKA_NODE_PORT_STEP * ((node_id or config.kafka_node_id) - 1)
    return config.kafka_port + offset, config.controller_port + offset


def processes(config: StackConfig) -> list[ManagedProcess]:
    return [process(node) for node in nodes(config)]


def every_process(config: StackConfig) -> list[ManagedProcess]:
    """The single broker's and a cluster's nodes', whichever this profile runs (for `down` and
    `status`, which work whatever DEVSTACK_KAFKA_BROKERS says now)."""
    single = dataclasses.replace(config, kafka_brokers=1, kafka_node_id=1)
    cluster = dataclasses.replace(config, kafka_brokers=3)
    return [process(single), *processes(cluster)]


def process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess(
        "kafka", config.data_dir / "kafka" / "kafka.pid", config.data_dir / "kafka" / "stdout.log"
    )


def install(config: StackConfig) -> bool:
    """Collect the broker's jars into the per-user cache (once). True if it downloaded now."""
    libs = config.kafka_libs
    if libs.is_dir() and any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        return False
    require_java()
    mvn = require_tool("mvn", "Maven (Debian package 'maven')")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    print(
        f"  downloading Kafka {KAFKA_VERSION} jars from Maven Central into {libs} ...", flush=True
    )
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(DEVSTACK_SOURCES / "kafka" / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
            f"-Dkafka.version={KAFKA_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise DevstackError(
            "Maven could not fetch the Kafka jars:\n" + (result.stdout + result.stderr)[-3000:]
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)  # atomic: a half-downloaded folder is never taken for a complete one
    return True


def _listeners(config: StackConfig) -> str:
    """listeners, advertised.listeners and their protocols. With `kafka_proxied_port` set, a
    second client listener, PROXIED, advertises the proxy's port: a client that bootstraps
    through the proxy is told to reach the broker there, so all its traffic passes the proxy,
    while PLAINTEXT keeps serving direct clients (and the broker itself)."""
    port, controller = node_ports(config)
    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{controller}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    if config.kafka_proxied_port:
        listeners.append(f"PROXIED://127.0.0.1:{config.kafka_proxied_port}")
        advertised.append(f"PROXIED://127.0.0.1:{config.kafka_proxied_advertised_port}")
        protocols.append("PROXIED:PLAINTEXT")
    return (
        f"listeners={','.join(listeners)}\n"
        f"advertised.listeners={','.join(advertised)}\n"
        f"listener.security.protocol.map={','.join(protocols)}"
    )


def _server_properties(config: StackConfig) -> str:
    data = config.data_dir / "kafka"
    return f"""# Written by devstack on every `up`; edit devstack/kafka_broker.py instead.
process.roles=broker,controller
node.id={config.kafka_node_id}
controller.quorum.voters={_voters(config)}
{_listeners(config)}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={data / "data"}
# Topics are created explicitly (python -m devstack topics), never by a stray producer.
auto.create.topics.enable=false
num.partitions={config.topic_partitions}
{_replication(config)}
# Consumers in tests join at once instead of waiting for more members.
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=8388608
log.retention.hours=-1
num.network.threads=2
num.io.threads=4
# Idle cost (docs/architecture.md, "Idle behaviour"). The controller appends a no-op record to
# the metadata log (and syncs it to disk) this often when nothing else changes (default 500 ms):
# only a health signal for a multi-node quorum.
metadata.max.idle.interval.ms=10000
# The high-watermark checkpoint file is rewritten this often (default 5 s); on one node the high
# watermark is recomputed at start-up anyway.
replica.high.watermark.checkpoint.interval.ms=30000
"""


def _voters(config: StackConfig) -> str:
    return ",".join(
        f"{n}@127.0.0.1:{node_ports(config, n)[1]}" for n in range(1, config.kafka_brokers + 1)
    )


def _replication(config: StackConfig) -> str:
    """One copy of everything on a single broker; on a cluster, as production: three copies, and
    a write acknowledged (acks=all) only once two of them have it."""
    copies, in_sync = (1, 1) if config.kafka_brokers == 1 else (3, 2)
    lines = [
        f"offsets.topic.replication.factor={copies}",
        "offsets.topic.num.partitions=10",
        f"transaction.state.log.replication.factor={copies}",
        f"transaction.state.log.min.isr={in_sync}",
        f"share.coordinator.state.topic.replication.factor={copies}",
        f"share.coordinator.state.topic.min.isr={in_sync}",
        f"min.insync.replicas={in_sync}",
    ]
    if config.kafka_brokers > 1:
        lines.append(f"default.replication.factor={copies}")
    return "\n".join(lines)


def _cluster_id(config: StackConfig) -> str:
    path = config.data_dir / "kafka" / "cluster-id"
    if config.kafka_brokers > 1:  # one id for every node of the cluster
        path = config.data_dir.parent / "cluster-id"
    if path.exists():
        return path.read_text().strip()
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cluster_id + "\n")
    return cluster_id


def _java_command(config: StackConfig, main_class: str, *args: str) -> list[str]:
    java = require_java()
    logs = config.data_dir / "kafka" / "logs"
    return [
        java,
        f"-Xms{min(256, _megabytes(config.kafka_heap))}m",
        f"-Xmx{config.kafka_heap}",
        # A small heap: the serial collector has no concurrent threads ticking while idle (G1
        # has several) and its young pauses stay short.
        "-XX:+UseSerialGC",
        # No hsperfdata counters sampled 20 times a second (only `jstat` reads them).
        "-XX:-UsePerfData",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile=file:{DEVSTACK_SOURCES / 'kafka' / 'log4j2.properties'}",
        "-cp",
        f"{config.kafka_libs}/*",
        main_class,
        *args,
    ]


def _megabytes(heap: str) -> int:
    value, unit = heap[:-1], heap[-1].lower()
    if unit == "g":
        return int(value) * 1024
    if unit == "m":
        return int(value)
    raise DevstackError(f"heap size must look like 512m or 1g, got {heap!r}")


def start_all(config: StackConfig) -> bool:
    """Start every node that does not run yet. True if any started now."""
    return any([start(node) for node in nodes(config)])


def start(config: StackConfig) -> bool:
    """Start the broker (one node of a cluster) unless it runs already. True if started now."""
    proc = process(config)
    if proc.pid() is not None:
        return False
    kafka_dir = config.data_dir / "kafka"
    (kafka_dir / "logs").mkdir(parents=True, exist_ok=True)
    properties = kafka_dir / "server.properties"
    properties.write_text(_server_properties(config))
    formatted = subprocess.run(
        _java_command(
            config,
            "kafka.tools.StorageTool",
            "format",
            # One argument: a base64url id may start with "-", which would read as an option.
            f"--cluster-id={_cluster_id(config)}",
            "-c",
            str(properties),
            "--ignore-formatted",
        ),
        capture_output=True,
        text=True,
    )
    if formatted.returncode != 0:
        raise DevstackError(
            "formatting Kafka storage failed:\n" + (formatted.stdout + formatted.stderr)[-3000:]
        )
    proc.start(_java_command(config, MAIN_CLASS, str(properties)), cwd=kafka_dir)
    return True


def wait_ready(config: StackConfig, timeout: float = 120.0) -> None:
    """Wait until the broker answers a metadata request (a cluster: naming every node)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node in nodes(config):
            proc = process(node)
            if proc.pid() is None:
                raise DevstackError(
                    "Kafka exited during start-up. Last lines of "
                    f"{node.data_dir / 'kafka' / 'logs' / 'server.log'}:\n"
                    + _server_log_tail(node)
                    + "\n"
                    + proc.log_tail(10)
                )
        if asyncio.run(metadata_answers(config.kafka_bootstrap_all, config.kafka_brokers)):
            return
        time.sleep(0.3)
    raise DevstackError(
        f"Kafka did not answer on {config.kafka_bootstrap} within {timeout:.0f}s "
        f"(slow machine? set DEVSTACK_READY_TIMEOUT). Last log lines:\n{_server_log_tail(config)}"
    )


async def metadata_answers(bootstrap: str, brokers: int = 1) -> bool:
    import logging

    from aiokafka import AIOKafkaClient  # imported late: the CLI's --help needs no venv

    logging.getLogger("aiokafka").setLevel(
        logging.CRITICAL
    )  # refusals are expected while it starts
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=5)
        return len(client.cluster.brokers()) >= brokers
    except Exception:
        return False
    finally:
        await client.close()


def _server_log_tail(config: StackConfig, lines: int = 20) -> str:
    log = config.data_dir / "kafka" / "logs" / "server.log"
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no server.log)"


def ready_timeout() -> float:
    return float(os.environ.get("DEVSTACK_READY_TIMEOUT", "120"))

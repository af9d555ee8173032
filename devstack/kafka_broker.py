"""Apache Kafka from Maven Central jars: single-node KRaft (broker and controller in one JVM)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from devstack.config import DEVSTACK_SOURCES, KAFKA_VERSION, StackConfig
from devstack.prerequisites import require_java, require_tool
from devstack.processes import DevstackError, ManagedProcess

MAIN_CLASS = "kafka.Kafka"


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


def _server_properties(config: StackConfig) -> str:
    data = config.data_dir / "kafka"
    return f"""# Written by devstack on every `up`; edit devstack/kafka_broker.py instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{config.controller_port}
listeners=PLAINTEXT://127.0.0.1:{config.kafka_port},CONTROLLER://127.0.0.1:{config.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{config.kafka_port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={data / "data"}
# Topics are created explicitly (python -m devstack topics), never by a stray producer.
auto.create.topics.enable=false
num.partitions={config.topic_partitions}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
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


def _cluster_id(config: StackConfig) -> str:
    path = config.data_dir / "kafka" / "cluster-id"
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


def start(config: StackConfig) -> bool:
    """Start the broker unless it runs already. True if started now."""
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
    """Wait until the broker answers a metadata request."""
    proc = process(config)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.pid() is None:
            raise DevstackError(
                "Kafka exited during start-up. Last lines of "
                f"{config.data_dir / 'kafka' / 'logs' / 'server.log'}:\n"
                + _server_log_tail(config)
                + "\n"
                + proc.log_tail(10)
            )
        if asyncio.run(metadata_answers(config.kafka_bootstrap)):
            return
        time.sleep(0.3)
    raise DevstackError(
        f"Kafka did not answer on {config.kafka_bootstrap} within {timeout:.0f}s "
        f"(slow machine? set DEVSTACK_READY_TIMEOUT). Last log lines:\n{_server_log_tail(config)}"
    )


async def metadata_answers(bootstrap: str) -> bool:
    import logging

    from aiokafka import AIOKafkaClient  # imported late: the CLI's --help needs no venv

    logging.getLogger("aiokafka").setLevel(
        logging.CRITICAL
    )  # refusals are expected while it starts
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=5)
        return bool(client.cluster.brokers())
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

"""A private Kafka broker, PostgreSQL and FerretDB for the infrastructure faults (issue 17).

Killing the broker or stopping the database must not touch the test profile's servers, which other
tests and developers use at the same time: this set runs from the same jars and binaries with
devstack's own functions, on ports of its own and in a data folder under pytest's temporary
folder, and the platform's services are pointed at it (`services.environment` takes the Kafka and
MongoDB addresses from the config).

The services reach both through a private Toxiproxy (devstack/toxiproxy_server.py), whose toxics
add latency or reset connections (`slow`, `reset_connections`). For Kafka that takes a broker
that advertises the proxy: besides its PLAINTEXT listener (direct, for the broker itself and for
starting and checking it), it has a PROXIED listener that the proxy forwards to and that tells
clients to connect to the proxy's port, so that every connection a service opens after the
bootstrap goes through the proxy too. `services_config` is the stack as the services see it.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
from dataclasses import dataclass
from pathlib import Path

from devstack import ferretdb_server, kafka_broker, postgres_server, services, toxiproxy_server
from devstack.__main__ import down, up
from devstack.config import StackConfig, load_config
from devstack.processes import port_in_use, wait_until
from tests.faults.harness import free_base_port
from tests.faults.toxiproxy import Toxiproxy

# The proxies' names in Toxiproxy.
KAFKA_PROXY, MONGO_PROXY = "kafka", "mongo"
PROXIES = (KAFKA_PROXY, MONGO_PROXY)


def free_ports(count: int) -> list[int]:
    """`count` consecutive free ports below Linux's ephemeral range (32768+), so that no client
    connection takes one between this check and the server's bind (or its restart)."""
    for _ in range(200):
        base = random.randint(20000, 32000 - count)
        if not any(port_in_use(base + i) for i in range(count)):
            return [base + i for i in range(count)]
    raise RuntimeError("no free ports")


def private_config(folder: Path) -> StackConfig:
    """The test profile's settings (no fsync, three partitions) on free ports and `folder`, with
    Toxiproxy's API, the broker's PROXIED listener, and last the ports of the Kafka and the
    MongoDB proxy (`Infrastructure.kafka_proxy_port`, `mongo_proxy_port`)."""
    ports = free_ports(8)
    kafka, controller, mongo, postgres, toxiproxy, proxied, kafka_proxy, _ = ports
    http_base = free_base_port(services.PORT_COUNT)
    while set(ports) & set(range(http_base - 1, http_base + services.PORT_COUNT)):
        http_base = free_base_port(services.PORT_COUNT)  # none bound yet: not seen as taken
    return dataclasses.replace(
        load_config("test"),
        data_dir=folder,
        kafka_port=kafka,
        controller_port=controller,
        mongo_port=mongo,
        postgres_port=postgres,
        mongo_backend="postgresql",  # the backing store the database fault stops too
        http_base_port=http_base,
        kafka_heap="256m",
        toxiproxy_port=toxiproxy,
        kafka_proxied_port=proxied,
        kafka_proxied_advertised_port=kafka_proxy,
    )


def remote_ports(pid: int) -> set[int]:
    """The remote ports of the established TCP connections of process `pid` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[3] == "01":  # 01: ESTABLISHED
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def cluster_config(folder: Path) -> StackConfig:
    """`private_config` with three brokers (devstack's cluster option: node n on the Kafka and
    controller ports + 100 * (n - 1)) and no proxies."""
    while True:
        config = dataclasses.replace(
            private_config(folder), kafka_brokers=3, kafka_proxied_port=0, kafka_heap="256m"
        )
        others = [
            port
            for node in (2, 3)
            for port in kafka_broker.node_ports(config, node)
            if port_in_use(port)
        ]
        if not others:
            return config


@dataclass(frozen=True)
class Infrastructure:
    """Start, kill, stop and restart the private servers (blocking: call through a thread)."""

    config: StackConfig

    @property
    def kafka_proxy_port(self) -> int:
        return self.config.kafka_proxied_advertised_port

    @property
    def mongo_proxy_port(self) -> int:
        return self.config.kafka_proxied_advertised_port + 1  # the last of `private_config`'s

    @property
    def proxied(self) -> bool:
        return bool(self.config.kafka_proxied_port)

    @property
    def services_config(self) -> StackConfig:
        """The stack as the services see it: Kafka and FerretDB through the proxies."""
        if not self.proxied:
            return self.config
        return dataclasses.replace(
            self.config, kafka_port=self.kafka_proxy_port, mongo_port=self.mongo_proxy_port
        )

    @property
    def toxiproxy(self) -> Toxiproxy:
        return Toxiproxy(toxiproxy_server.url(self.config))

    def up(self) -> None:
        up(self.config)  # installs nothing new: the jars and binaries are in the per-user cache
        if not self.proxied:
            return
        toxiproxy_server.start(self.config)
        toxiproxy_server.wait_ready(self.config)
        proxied = self.config.kafka_proxied_port
        self.toxiproxy.create_proxy(
            KAFKA_PROXY, f"127.0.0.1:{self.kafka_proxy_port}", f"127.0.0.1:{proxied}"
        )
        self.toxiproxy.create_proxy(
            MONGO_PROXY, f"127.0.0.1:{self.mongo_proxy_port}", f"127.0.0.1:{self.config.mongo_port}"
        )

    def down(self) -> None:
        down(self.config)  # the services started on this config too
        postgres_server.remove_cluster(self.config)  # when it had to live in /var/tmp

    def kill_kafka(self) -> None:
        """`kill -9` the broker (its controller runs in the same JVM)."""
        broker = kafka_broker.process(self.config)
        pid = broker.pid()
        assert pid is not None, "Kafka is not running"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: broker.pid() is None, 30, "Kafka to die after SIGKILL", interval=0.05)

    def start_kafka(self) -> None:
        kafka_broker.start(self.config)
        kafka_broker.wait_ready(self.config, timeout=kafka_broker.ready_timeout())

    def node(self, node_id: int) -> StackConfig:
        return kafka_broker.nodes(self.config)[node_id - 1]

    def kill_node(self, node_id: int) -> None:
        """`kill -9` one broker of the cluster."""
        node = kafka_broker.process(self.node(node_id))
        pid = node.pid()
        assert pid is not None, f"Kafka node {node_id} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: node.pid() is None, 30, "the Kafka node to die", interval=0.05)

    def start_node(self, node_id: int) -> None:
        """Start one broker of the cluster again; until the cluster names all three."""
        kafka_broker.start(self.node(node_id))
        kafka_broker.wait_ready(self.config, timeout=kafka_broker.ready_timeout())

    def stop_database(self) -> None:
        """Stop FerretDB, then PostgreSQL (each with its clean-stop signal)."""
        assert ferretdb_server.process(self.config).stop(timeout=30), "FerretDB was not running"
        assert postgres_server.process(self.config).stop(timeout=30), "PostgreSQL was not running"

    def start_database(self) -> None:
        postgres_server.start(self.config)
        postgres_server.wait_ready(self.config)
        ferretdb_server.start(self.config)
        ferretdb_server.wait_ready(self.config)

    def slow(self, latency_ms: int = 2000) -> None:
        """Every answer from Kafka and from the database arrives `latency_ms` late."""
        for proxy in PROXIES:
            self.toxiproxy.add_toxic(proxy, "latency", {"latency": latency_ms, "jitter": 0})

    def reset_connections(self) -> None:
        """Every connection to Kafka and to the database is reset (TCP RST) when a client sends
        on it: the open ones at their next request, new ones at their first."""
        for proxy in PROXIES:
            self.toxiproxy.add_toxic(proxy, "reset_peer", {"timeout": 0}, stream="upstream")

    def heal(self) -> None:
        """Every toxic removed: the proxies pass everything again."""
        self.toxiproxy.reset()

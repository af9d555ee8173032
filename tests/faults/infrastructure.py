"""A private Kafka broker, PostgreSQL and FerretDB for the infrastructure faults (issue 17).

Killing the broker or stopping the database must not touch the test profile's servers, which other
tests and developers use at the same time: this set runs from the same jars and binaries with
devstack's own functions, on ports of its own and in a data folder under pytest's temporary
folder, and the platform's services are pointed at it (`services.environment` takes the Kafka and
MongoDB addresses from the config).
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
from dataclasses import dataclass
from pathlib import Path

from devstack import ferretdb_server, kafka_broker, postgres_server, services
from devstack.__main__ import down, up
from devstack.config import StackConfig, load_config
from devstack.processes import port_in_use, wait_until
from tests.faults.harness import free_base_port


def free_ports(count: int) -> list[int]:
    """`count` consecutive free ports below Linux's ephemeral range (32768+), so that no client
    connection takes one between this check and the server's bind (or its restart)."""
    for _ in range(200):
        base = random.randint(20000, 32000 - count)
        if not any(port_in_use(base + i) for i in range(count)):
            return [base + i for i in range(count)]
    raise RuntimeError("no free ports")


def private_config(folder: Path) -> StackConfig:
    """The test profile's settings (no fsync, three partitions) on free ports and `folder`."""
    kafka, controller, mongo, postgres = free_ports(4)
    return dataclasses.replace(
        load_config("test"),
        data_dir=folder,
        kafka_port=kafka,
        controller_port=controller,
        mongo_port=mongo,
        postgres_port=postgres,
        mongo_backend="postgresql",  # the backing store the database fault stops too
        http_base_port=free_base_port(services.PORT_COUNT),
        kafka_heap="256m",
    )


@dataclass(frozen=True)
class Infrastructure:
    """Start, kill, stop and restart the private servers (blocking: call through a thread)."""

    config: StackConfig

    def up(self) -> None:
        up(self.config)  # installs nothing new: the jars and binaries are in the per-user cache

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

    def stop_database(self) -> None:
        """Stop FerretDB, then PostgreSQL (each with its clean-stop signal)."""
        assert ferretdb_server.process(self.config).stop(timeout=30), "FerretDB was not running"
        assert postgres_server.process(self.config).stop(timeout=30), "PostgreSQL was not running"

    def start_database(self) -> None:
        postgres_server.start(self.config)
        postgres_server.wait_ready(self.config)
        ferretdb_server.start(self.config)
        ferretdb_server.wait_ready(self.config)

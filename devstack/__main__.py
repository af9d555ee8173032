"""python -m devstack [--profile run|test] up|run|down|status|logs|reset|topics"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time

from devstack import (
    ferretdb_server,
    kafka_broker,
    keycloak_server,
    postgres_server,
    prometheus_server,
    services,
    toxiproxy_server,
)
from devstack.config import StackConfig, load_config
from devstack.processes import DevstackError, ensure_port_free


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=(
            "Local Kafka broker, MongoDB-protocol server (FerretDB on PostgreSQL) and platform "
            "services."
        ),
    )
    parser.add_argument(
        "--profile",
        choices=("run", "test"),
        default="run",
        help="'run' for the local platform, 'test' for the test suite (own ports and data)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_command = commands.add_parser(
        "up",
        help="start Kafka, PostgreSQL and FerretDB (installing them once) and create topics",
    )
    run_command = commands.add_parser(
        "run", help="'up', then start the four services and wait until ready"
    )
    for command in (up_command, run_command):
        command.add_argument(
            "--with-monitoring",
            action="store_true",
            help="also run Prometheus with the project's alert rules, scraping the services",
        )
        command.add_argument(
            "--with-keycloak",
            action="store_true",
            help="also run Keycloak, the staff's OpenID Connect provider (realm 'dvc'); "
            "DEVSTACK_KEYCLOAK=1 (DEVSTACK_TEST_KEYCLOAK=1) does the same",
        )
        command.add_argument(
            "--with-toxiproxy",
            action="store_true",
            help="also run Toxiproxy, the fault-injection proxy (its HTTP API; no proxies yet)",
        )
    commands.add_parser("down", help="stop everything this profile started (data is kept)")
    commands.add_parser("status", help="what runs, where, and the data folder")
    logs = commands.add_parser("logs", help="print the last lines of a component's log")
    logs.add_argument(
        "component",
        choices=(
            "kafka",
            "postgres",
            "ferretdb",
            "prometheus",
            "keycloak",
            "toxiproxy",
            *services.PROCESSES,
        ),
    )
    logs.add_argument("-n", type=int, default=50)
    commands.add_parser("reset", help="stop everything and delete this profile's data")
    commands.add_parser("topics", help="create the platform's topics (part of 'up')")
    args = parser.parse_args(argv)

    config = load_config(args.profile)
    try:
        match args.command:
            case "up":
                with_keycloak = args.with_keycloak or keycloak_server.enabled(config)
                if with_keycloak:
                    start_keycloak(config)  # starts while the rest comes up
                up(config)
                if with_keycloak:
                    wait_keycloak(config)
                if args.with_monitoring:
                    start_monitoring(config)
                if args.with_toxiproxy:
                    start_toxiproxy(config)
            case "run":
                with_keycloak = args.with_keycloak or keycloak_server.enabled(config)
                if with_keycloak:
                    start_keycloak(config)
                up(config)
                if with_keycloak:
                    wait_keycloak(config)
                start_services(config)
                if args.with_monitoring:
                    start_monitoring(config)
                if args.with_toxiproxy:
                    start_toxiproxy(config)
            case "down":
                down(config)
            case "status":
                return status(config)
            case "logs":
                print(_component(config, args.component).log_tail(args.n))
            case "reset":
                down(config)
                if config.mongo_backend == "postgresql":
                    postgres_server.remove_cluster(config)
                shutil.rmtree(config.data_dir, ignore_errors=True)
                print(f"removed {config.data_dir}")
            case "topics":
                create_topics(config)
    except DevstackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def up(config: StackConfig) -> None:
    started = time.monotonic()
    on_postgres = config.mongo_backend == "postgresql"
    kafka_broker.install(config)
    if on_postgres:
        postgres_server.install(config)
    ferretdb_server.install(config)
    # Not started by `up` (only with --with-toxiproxy), but installed with the rest, so that a
    # fresh machine running ./scripts/test has it for the fault suite (tests/faults/). Nothing
    # else needs it: a failed build warns (the fault suite builds it again and fails with why).
    try:
        toxiproxy_server.install(config)
    except DevstackError as exc:
        print(f"devstack: warning: {exc}", file=sys.stderr)
    check_ports(config)
    kafka_started = kafka_broker.start_all(config)
    postgres_started = on_postgres and postgres_server.start(config)
    if on_postgres:
        postgres_server.wait_ready(config)
    ferretdb_started = ferretdb_server.start(config)
    ferretdb_server.wait_ready(config)
    kafka_broker.wait_ready(config, timeout=kafka_broker.ready_timeout())
    create_topics(config)
    started_any = kafka_started or postgres_started or ferretdb_started
    state = "started" if started_any else "already running"
    backend = f"PostgreSQL 127.0.0.1:{config.postgres_port}" if on_postgres else "SQLite"
    brokers = f" ({config.kafka_brokers} brokers)" if config.kafka_brokers > 1 else ""
    print(
        f"infrastructure ({config.profile}) {state} in {time.monotonic() - started:.1f}s: "
        f"Kafka {config.kafka_bootstrap_all}{brokers}, FerretDB {config.mongo_url} on {backend}, "
        f"data {config.data_dir}"
    )


def check_ports(config: StackConfig) -> None:
    """Fail before starting anything if a port of a component that is not running is taken."""
    for node in kafka_broker.nodes(config):
        if kafka_broker.process(node).pid() is None:
            port, controller = kafka_broker.node_ports(node)
            ensure_port_free(port, "Kafka", config.env_name("KAFKA_PORT"))
            ensure_port_free(
                controller, "the Kafka controller", config.env_name("KAFKA_CONTROLLER_PORT")
            )
    if ferretdb_server.process(config).pid() is None:
        ensure_port_free(config.mongo_port, "FerretDB", config.env_name("MONGO_PORT"))
    if config.mongo_backend == "postgresql" and postgres_server.process(config).pid() is None:
        ensure_port_free(config.postgres_port, "PostgreSQL", config.env_name("POSTGRES_PORT"))


def create_topics(config: StackConfig) -> None:
    from shared.contracts.topics import platform_topics
    from shared.runtime.kafka import ensure_topics

    specs = platform_topics(config.topic_partitions, config.topic_retention_ms)
    # A cluster keeps three copies of every partition, as production does.
    copies = 3 if config.kafka_brokers > 1 else 1
    created = asyncio.run(ensure_topics(config.kafka_bootstrap, specs, replication_factor=copies))
    if created:
        print(f"  created {len(created)} topics")


def start_services(config: StackConfig) -> None:
    for service in services.PROCESSES:
        services.start(config, service)
    for service in services.PROCESSES:
        services.wait_ready(config, service)
        print(f"  {service:<16} http://127.0.0.1:{services.port(config, service)}  (docs: /docs)")


def start_monitoring(config: StackConfig) -> None:
    state = "started" if prometheus_server.start(config) else "reloaded"
    prometheus_server.wait_ready(config)
    print(f"  prometheus       {prometheus_server.url(config)}  ({state}; alerts: /alerts)")


def start_toxiproxy(config: StackConfig) -> None:
    state = "started" if toxiproxy_server.start(config) else "already running"
    toxiproxy_server.wait_ready(config)
    print(f"  toxiproxy        {toxiproxy_server.url(config)}  ({state}; API: /proxies)")


def start_keycloak(config: StackConfig) -> None:
    keycloak_server.install(config)
    keycloak_server.start(config)


def wait_keycloak(config: StackConfig) -> None:
    started = time.monotonic()
    keycloak_server.wait_ready(config)
    print(
        f"  keycloak         {keycloak_server.issuer(config)}  (ready after a further "
        f"{time.monotonic() - started:.0f}s; console /admin/, admin/admin)"
    )


def down(config: StackConfig) -> None:
    if keycloak_server.process(config).stop(timeout=60):
        print("  stopped keycloak")
    if prometheus_server.process(config).stop():
        print("  stopped prometheus")
    for service in services.PROCESSES:
        if services.process(config, service).stop():
            print(f"  stopped {service}")
    # After the services, which may reach Kafka and the database through it.
    if toxiproxy_server.process(config).stop():
        print("  stopped toxiproxy")
    # FerretDB before PostgreSQL, which it writes to.
    components = (
        *kafka_broker.every_process(config),
        ferretdb_server.process(config),
        postgres_server.process(config),
    )
    for component in components:
        if component.stop(timeout=60):
            print(f"  stopped {component.name}")


def status(config: StackConfig) -> int:
    rows = [
        *(
            (
                f"kafka-{node.kafka_node_id}" if config.kafka_brokers > 1 else "kafka",
                kafka_broker.process(node),
                f"127.0.0.1:{kafka_broker.node_ports(node)[0]}",
            )
            for node in kafka_broker.nodes(config)
        ),
        ("postgres", postgres_server.process(config), f"127.0.0.1:{config.postgres_port}"),
        ("ferretdb", ferretdb_server.process(config), config.mongo_url),
        ("prometheus", prometheus_server.process(config), prometheus_server.url(config)),
        ("keycloak", keycloak_server.process(config), keycloak_server.issuer(config)),
        ("toxiproxy", toxiproxy_server.process(config), toxiproxy_server.url(config)),
        *(
            (s, services.process(config, s), f"http://127.0.0.1:{services.port(config, s)}")
            for s in services.PROCESSES
        ),
    ]
    for name, proc, address in rows:
        pid = proc.pid()
        print(f"{name:<16} {'running' if pid else 'stopped':<8} {pid or '':<8} {address}")
    print(f"data: {config.data_dir}")
    return 0


def _component(config: StackConfig, name: str):
    if name == "kafka":  # a cluster's first node
        return kafka_broker.process(kafka_broker.nodes(config)[0])
    if name == "ferretdb":
        return ferretdb_server.process(config)
    if name == "postgres":
        return postgres_server.process(config)
    if name == "prometheus":
        return prometheus_server.process(config)
    if name == "keycloak":
        return keycloak_server.process(config)
    if name == "toxiproxy":
        return toxiproxy_server.process(config)
    return services.process(config, name)


if __name__ == "__main__":
    sys.exit(main())

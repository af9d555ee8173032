"""devstack's three-broker cluster (`DEVSTACK_KAFKA_BROKERS=3`): the nodes' ports, folders and
configuration. The cluster itself runs in the fault suite (tests/faults/test_cluster_faults.py,
`DVC_FAULTS=full`), which kills a partition leader under load."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import kafka_broker
from devstack.config import load_config


def properties(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_three_nodes_on_ports_a_hundred_apart_with_folders_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSTACK_TEST_KAFKA_BROKERS", "3")
    monkeypatch.setenv("DEVSTACK_TEST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DEVSTACK_TEST_KAFKA_PORT", raising=False)
    monkeypatch.delenv("DEVSTACK_TEST_KAFKA_CONTROLLER_PORT", raising=False)
    config = load_config("test")
    nodes = kafka_broker.nodes(config)

    assert [node.kafka_node_id for node in nodes] == [1, 2, 3]
    assert [kafka_broker.node_ports(node) for node in nodes] == [
        (19092, 19093),
        (19192, 19193),
        (19292, 19293),
    ]
    assert [node.data_dir for node in nodes] == [
        tmp_path / "kafka-cluster" / f"node{n}" for n in (1, 2, 3)
    ]
    assert len({kafka_broker.process(node).pid_file for node in nodes}) == 3
    assert config.kafka_bootstrap == "127.0.0.1:19092"  # what the services are given
    assert config.kafka_bootstrap_all == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"


def test_each_node_is_a_voter_of_one_quorum_and_writes_need_two_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSTACK_TEST_KAFKA_BROKERS", "3")
    monkeypatch.setenv("DEVSTACK_TEST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DEVSTACK_TEST_KAFKA_PORT", raising=False)
    monkeypatch.delenv("DEVSTACK_TEST_KAFKA_CONTROLLER_PORT", raising=False)
    second = kafka_broker.nodes(load_config("test"))[1]
    settings = properties(kafka_broker._server_properties(second))

    assert settings["node.id"] == "2"
    assert settings["process.roles"] == "broker,controller"
    assert settings["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    )
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    assert settings["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19192"
    assert settings["min.insync.replicas"] == "2"
    assert settings["default.replication.factor"] == "3"
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["transaction.state.log.min.isr"] == "2"
    assert settings["log.dirs"] == str(tmp_path / "kafka-cluster" / "node2" / "kafka" / "data")
    # One cluster id for the three.
    ids = {kafka_broker._cluster_id(node) for node in kafka_broker.nodes(load_config("test"))}
    assert len(ids) == 1


def test_a_single_broker_stays_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BROKERS", "PORT", "CONTROLLER_PORT"):
        monkeypatch.delenv(f"DEVSTACK_TEST_KAFKA_{name}", raising=False)
    config = load_config("test")
    assert kafka_broker.nodes(config) == [config]
    settings = properties(kafka_broker._server_properties(config))
    assert settings["node.id"] == "1"
    assert settings["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert settings["min.insync.replicas"] == "1"
    assert "default.replication.factor" not in settings
    assert config.kafka_bootstrap_all == config.kafka_bootstrap == "127.0.0.1:19092"


def test_only_one_or_three_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSTACK_TEST_KAFKA_BROKERS", "2")
    with pytest.raises(SystemExit, match="1 or 3"):
        load_config("test")

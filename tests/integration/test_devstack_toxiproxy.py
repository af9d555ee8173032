"""Toxiproxy under devstack (`python -m devstack up --with-toxiproxy`), on a port and a data folder
of its own: its API answers, a proxy forwards to a real TCP server, a latency toxic delays what
passes, `reset_peer` resets the connection, `reset` clears them; `status` shows it and `down`
stops it. The client is the fault suite's (tests/faults/toxiproxy.py)."""

from __future__ import annotations

import dataclasses
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import kafka_broker, toxiproxy_server
from devstack.__main__ import start_toxiproxy
from devstack.config import PROJECT_ROOT, TOXIPROXY_VERSION, load_config
from tests.faults.toxiproxy import Toxiproxy
from tests.integration.test_devstack import free_ports


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(4096):
                self.request.sendall(data)
        except ConnectionError:  # the proxy reset it (reset_peer)
            pass


@pytest.fixture
def echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    [port] = free_ports(1)
    env = {
        "DEVSTACK_TEST_DATA_DIR": str(tmp_path / "stack"),
        "DEVSTACK_TEST_TOXIPROXY_PORT": str(port),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    toxiproxy_server.process(load_config("test")).stop()


def round_trip(port: int, payload: bytes = b"ping") -> tuple[bytes, float]:
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
    return received, time.monotonic() - began


def test_the_server_is_built_into_the_per_user_cache_outside_the_checkout() -> None:
    config = load_config("test")
    toxiproxy_server.install(config)  # `up` (so ./scripts/test) has done it already
    binary = config.toxiproxy_binary
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert f"toxiproxy-{TOXIPROXY_VERSION}" in str(binary)
    assert PROJECT_ROOT not in binary.parents
    assert toxiproxy_server.install(config) is False  # once


def test_a_proxy_passes_data_and_its_toxics_delay_and_reset_it(
    stack_env: dict[str, str], echo_server: int
) -> None:
    config = load_config("test")
    start_toxiproxy(config)
    api = Toxiproxy(toxiproxy_server.url(config))
    assert api.version()
    [listen] = free_ports(1)
    api.create_proxy("echo", f"127.0.0.1:{listen}", f"127.0.0.1:{echo_server}")

    assert round_trip(listen)[0] == b"ping"

    api.add_toxic("echo", "latency", {"latency": 700, "jitter": 0})
    received, seconds = round_trip(listen)
    assert received == b"ping" and seconds >= 0.65
    assert [toxic["type"] for toxic in api.toxics("echo")] == ["latency"]

    api.add_toxic("echo", "reset_peer", {"timeout": 0}, stream="upstream")
    with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
        received, _ = round_trip(listen)
        if not received:  # a reset read as end of stream on some kernels
            raise ConnectionResetError

    api.reset()  # every toxic removed
    received, seconds = round_trip(listen)
    assert received == b"ping" and seconds < 0.5

    status = subprocess.run(
        [sys.executable, "-m", "devstack", "--profile", "test", "status"],
        env={**os.environ, **stack_env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    [row] = [line for line in status.stdout.splitlines() if line.startswith("toxiproxy")]
    assert row.split()[1:3] == ["running", str(toxiproxy_server.process(config).pid())]
    assert toxiproxy_server.url(config) in row

    start_toxiproxy(config)  # a second start finds it running and keeps its proxies
    assert set(api.proxies()) == {"echo"}

    down = subprocess.run(
        [sys.executable, "-m", "devstack", "--profile", "test", "down"],
        env={**os.environ, **stack_env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 0, down.stderr
    assert "stopped toxiproxy" in down.stdout
    assert toxiproxy_server.process(config).pid() is None


def test_the_broker_advertises_a_proxied_listener_only_when_asked() -> None:
    config = load_config("test")
    plain = kafka_broker._server_properties(config)
    assert "PROXIED" not in plain
    assert f"advertised.listeners=PLAINTEXT://127.0.0.1:{config.kafka_port}\n" in plain

    proxied = kafka_broker._server_properties(
        dataclasses.replace(config, kafka_proxied_port=20001, kafka_proxied_advertised_port=20002)
    )
    assert (
        f"listeners=PLAINTEXT://127.0.0.1:{config.kafka_port},"
        f"CONTROLLER://127.0.0.1:{config.controller_port},PROXIED://127.0.0.1:20001\n"
    ) in proxied
    assert (
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{config.kafka_port},"
        "PROXIED://127.0.0.1:20002\n"
    ) in proxied
    assert "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT," in proxied

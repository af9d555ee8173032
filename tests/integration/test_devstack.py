"""The infrastructure CLI on a stack of its own (own ports and data folder), and the services
started as separate processes against the test infrastructure."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from pymongo import MongoClient

from devstack import services
from devstack.config import PROJECT_ROOT, StackConfig, load_config
from devstack.processes import port_in_use, wait_until


def free_ports(count: int) -> list[int]:
    """`count` consecutive free ports on 127.0.0.1, below Linux's ephemeral range (32768+), so
    that no client connection takes one between this check and the server's bind."""
    for _ in range(200):
        base = random.randint(20000, 32000 - count)
        if not any(port_in_use(base + i) for i in range(count)):
            return [base + i for i in range(count)]
    raise RuntimeError("no free ports")


def devstack(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devstack", "--profile", "test", *args],
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def own_stack(tmp_path: Path):
    kafka, controller, mongo, postgres, http = free_ports(5)
    env = {
        "DEVSTACK_TEST_DATA_DIR": str(tmp_path / "stack"),
        "DEVSTACK_TEST_KAFKA_PORT": str(kafka),
        "DEVSTACK_TEST_KAFKA_CONTROLLER_PORT": str(controller),
        "DEVSTACK_TEST_MONGO_PORT": str(mongo),
        "DEVSTACK_TEST_POSTGRES_PORT": str(postgres),
        "DEVSTACK_TEST_HTTP_BASE_PORT": str(http),
        "DEVSTACK_TEST_KAFKA_HEAP": "256m",
    }
    yield env
    devstack(env, "down")


def test_up_twice_is_harmless_and_a_restart_keeps_the_data(own_stack: dict[str, str]) -> None:
    first = devstack(own_stack, "up")
    assert first.returncode == 0, first.stderr
    assert "started" in first.stdout
    status = devstack(own_stack, "status").stdout

    second = devstack(own_stack, "up")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    assert devstack(own_stack, "status").stdout == status  # same pids

    mongo_url = f"mongodb://127.0.0.1:{own_stack['DEVSTACK_TEST_MONGO_PORT']}/"
    bootstrap = f"127.0.0.1:{own_stack['DEVSTACK_TEST_KAFKA_PORT']}"
    with MongoClient(mongo_url) as client:
        client.keep.docs.insert_one({"_id": "dossier", "state": 4})
    produce(bootstrap, "dvc.dossier.submitted.v1", b"kept across restarts")

    down = devstack(own_stack, "down")
    assert down.returncode == 0
    assert "stopped kafka" in down.stdout and "stopped ferretdb" in down.stdout
    assert "stopped postgres" in down.stdout
    assert not port_in_use(int(own_stack["DEVSTACK_TEST_KAFKA_PORT"]))
    assert not port_in_use(int(own_stack["DEVSTACK_TEST_POSTGRES_PORT"]))

    again = devstack(own_stack, "up")
    assert again.returncode == 0, again.stderr
    with MongoClient(mongo_url) as client:
        assert client.keep.docs.find_one({"_id": "dossier"}) == {"_id": "dossier", "state": 4}
    assert read_first(bootstrap, "dvc.dossier.submitted.v1") == b"kept across restarts"

    devstack(own_stack, "down")
    reset = devstack(own_stack, "reset")
    assert reset.returncode == 0
    assert not Path(own_stack["DEVSTACK_TEST_DATA_DIR"]).exists()


def test_a_taken_port_gets_a_clear_message(own_stack: dict[str, str]) -> None:
    port = int(own_stack["DEVSTACK_TEST_MONGO_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = devstack(own_stack, "up")
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert "DEVSTACK_TEST_MONGO_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_java_gets_a_clear_message(own_stack: dict[str, str], tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = devstack({**own_stack, "PATH": str(empty_bin)}, "up")
    assert result.returncode == 1
    assert "'java' was not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_four_services_and_the_simulators_run_as_processes_and_report_ready(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    config = dataclasses.replace(
        load_config("test"),
        data_dir=tmp_path,
        http_base_port=free_ports(services.PORT_COUNT)[0],
    )
    try:
        for name in services.PROCESSES:
            services.start(config, name)
        for name in services.PROCESSES:
            services.wait_ready(config, name)
        for service in services.SERVICES:
            base = f"http://127.0.0.1:{services.port(config, service)}"
            ready = json.load(urllib.request.urlopen(f"{base}/health/ready"))
            assert ready == {
                "status": "ok",
                "checks": {"kafka": True, "mongodb": True, "consumers": True},
            }
            metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
            assert (
                f'dvc_http_requests_total{{method="GET",route="/health/ready",service="{service}"'
                in metrics
            )
        simulator = f"http://127.0.0.1:{services.port(config, services.PORTAL_SIMULATOR)}"
        assert "dossiers" in json.load(urllib.request.urlopen(f"{simulator}/_admin/state"))
        notification = services.environment(config, "notification")
        assert notification["DVC_NOTIFICATION_PORTAL_URL"] == simulator
        sent_through_the_simulators(config, notification)
    finally:
        for name in services.PROCESSES:
            process = services.process(config, name)
            pid = process.pid()
            if pid:
                os.kill(pid, signal.SIGTERM)
    for name in services.PROCESSES:
        process = services.process(config, name)
        wait_until(lambda p=process: p.pid() is None, 30, f"{name} to stop")
        assert "Application shutdown complete" in process.log_tail(10)


def sent_through_the_simulators(config: StackConfig, notification: dict[str, str]) -> None:
    """Notification's settings point its channels at the mail and SMS simulators, and the SMS
    simulator's signed receipts reach notification (404: the signature passed, but the message is
    not one notification sent)."""
    import asyncio

    from services.notification.citizens.adapters.email import SmtpEmailChannel
    from services.notification.citizens.adapters.sms import HttpSmsChannel
    from services.notification.citizens.domain.ports import OutgoingMessage

    assert notification["DVC_NOTIFICATION_SMTP_PORT"] == str(services.smtp_port(config))
    sms_port = services.port(config, services.SMS_SIMULATOR)
    assert notification["DVC_NOTIFICATION_SMS_GATEWAY_URL"] == f"http://127.0.0.1:{sms_port}/sms"

    async def send() -> None:
        message = OutgoingMessage("n-1", "000.00.21.G12-261128-0001", "", "Tiêu đề", "Nội dung")
        mail = SmtpEmailChannel(
            host=notification["DVC_NOTIFICATION_SMTP_HOST"],
            port=int(notification["DVC_NOTIFICATION_SMTP_PORT"]),
            sender="no-reply@dichvucong.most.gov.vn",
        )
        sms = HttpSmsChannel(
            url=notification["DVC_NOTIFICATION_SMS_GATEWAY_URL"],
            token=notification["DVC_NOTIFICATION_SMS_GATEWAY_TOKEN"],
        )
        try:
            await mail.send(dataclasses.replace(message, address="lan@example.vn"))
            await sms.send(dataclasses.replace(message, address="0912345678"))
        finally:
            await mail.close()
            await sms.close()

    asyncio.run(send())
    mail = f"http://127.0.0.1:{services.port(config, services.MAIL_SIMULATOR)}/messages"
    [stored] = json.load(urllib.request.urlopen(mail))["messages"]
    assert stored["to"] == ["lan@example.vn"] and stored["subject"] == "Tiêu đề"
    assert (services.data_folder(config, services.MAIL_SIMULATOR) / stored["file"]).is_file()

    def receipt() -> dict | None:
        url = f"http://127.0.0.1:{sms_port}/messages?to=0912345678"
        [sms] = json.load(urllib.request.urlopen(url))["messages"]
        return sms["receipt"]

    wait_until(lambda: receipt() is not None, 30, "the SMS receipt")
    assert receipt()["answer"] == 404  # type: ignore[index]


def produce(bootstrap: str, topic: str, value: bytes) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=b"k")
        finally:
            await producer.stop()

    asyncio.run(run())


def read_first(bootstrap: str, topic: str) -> bytes:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def run() -> bytes:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
            return record.value
        finally:
            await consumer.stop()

    return asyncio.run(run())

"""End to end: the four services as separate processes over the real broker and database.

A dossier goes in at the gateway, an officer receives it, the applicant is told (the SMS gateway
and the mail server are down here, so the message falls back to the portal inbox), the tracking
view shows the due date, and the quarterly report counts it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from devstack.config import PROJECT_ROOT
from devstack.processes import ManagedProcess, port_in_use
from services.notification.webhooks.domain.signing import verify
from shared.contracts.cloudevents import CloudEvent, unwrap
from shared.contracts.topics import PUBLIC_DOSSIER_STATUS_TOPIC
from shared.runtime.auth import DevIssuer
from tests.conftest import KAFKA_BOOTSTRAP
from tests.intake_samples import dossier_json, multipart, trademark_files
from tests.integration.notification.servers import WebhookReceiver
from tests.integration.test_devstack import free_ports
from tests.kafka_helpers import read_until
from tests.service_harness import create_suffixed_topics

SERVICES = ("intake", "processing", "notification", "reporting")


@pytest.fixture
async def platform(kafka_bootstrap: str, mongo_url: str, tmp_path: Path):
    token = uuid.uuid4().hex[:8]
    suffix = f".e2e{token}"
    await create_suffixed_topics(kafka_bootstrap, suffix)
    issuer = DevIssuer(tmp_path / "issuer")
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    closed_port = free_ports(1)[0]  # nothing listens: SMS gateway and SMTP are "down"
    portal_port = free_ports(1)[0]
    common = {
        "ENVIRONMENT": "test",
        "HTTP_HOST": "127.0.0.1",
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MONGO_URL": mongo_url,
        "TOPIC_SUFFIX": suffix,
        "JWT_PUBLIC_KEY_FILE": str(issuer.public_key_path),
        "CONSUMER_BACKOFF_SECONDS": "0.05",
    }
    extra = {
        "intake": {
            "SUBMISSIONS_PER_MINUTE": "100000",
            "RELAY_POLL_SECONDS": "1",
            "PROCESSING_BASE_URL": f"http://127.0.0.1:{ports['processing']}",
            # intake's own narrow credential: good at processing only, for results only
            "PROCESSING_TOKEN": DevIssuer(tmp_path / "issuer", audience="dvc-processing").mint(
                "svc-intake", ["result_reader"], None
            ),
        },
        "notification": {
            "SMS_GATEWAY_URL": f"http://127.0.0.1:{closed_port}/sms",
            "SMTP_PORT": str(closed_port),
            "DELIVERY_MAX_ATTEMPTS": "1",
            "DELIVERY_BACKOFF_SECONDS": "0",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true",  # the agency's receiver is local here
            "WEBHOOK_REFRESH_SECONDS": "0.5",
            "PORTAL_ENABLED": "true",
            "PORTAL_URL": f"http://127.0.0.1:{portal_port}",
            "PORTAL_POLL_SECONDS": "0.2",
        },
    }
    simulator = ManagedProcess("portal", tmp_path / "portal.pid", tmp_path / "portal.log")
    portal_module = "devstack.simulators.portal"
    simulator.start(
        [sys.executable, "-m", portal_module, "--port", str(portal_port)],
        env={},
        cwd=PROJECT_ROOT,
    )
    processes = {"portal-simulator": simulator}
    for service in SERVICES:
        prefix = f"DVC_{service.upper()}_"
        env = {prefix + k: v for k, v in {**common, **extra.get(service, {})}.items()}
        env[prefix + "HTTP_PORT"] = str(ports[service])
        env[prefix + "MONGO_DATABASE"] = f"e2e_{token}_{service}"
        process = ManagedProcess(service, tmp_path / f"{service}.pid", tmp_path / f"{service}.log")
        process.start([sys.executable, "-m", f"services.{service}"], env=env, cwd=PROJECT_ROOT)
        processes[service] = process
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for service, port in ports.items():
                await wait_ready(client, f"http://127.0.0.1:{port}", processes[service])
            urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
            urls["portal"] = f"http://127.0.0.1:{portal_port}"
            env = {
                "DVC_NOTIFICATION_MONGO_URL": mongo_url,
                "DVC_NOTIFICATION_MONGO_DATABASE": f"e2e_{token}_notification",
            }
            yield client, urls, issuer, suffix, env
    finally:
        for process in processes.values():
            if pid := process.pid():
                os.kill(pid, signal.SIGTERM)
        for process in processes.values():
            for _ in range(300):
                if process.pid() is None:
                    break
                await asyncio.sleep(0.1)
        from pymongo import AsyncMongoClient

        mongo = AsyncMongoClient(mongo_url)
        for service in SERVICES:
            await mongo.drop_database(f"e2e_{token}_{service}")
        await mongo.close()
        assert all(not port_in_use(p) for p in [*ports.values(), portal_port])


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


async def wait_ready(client: httpx.AsyncClient, base: str, process: ManagedProcess) -> None:
    async with asyncio.timeout(60):
        while True:
            assert process.pid() is not None, process.log_tail()
            try:
                if (await client.get(f"{base}/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def eventually(probe, within: float = 60):
    """Polls `probe()` until it returns something truthy."""
    last = None
    try:
        async with asyncio.timeout(within):
            while not (last := await probe()):  # noqa: ASYNC110 - polling other processes
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(f"condition never held; last value: {last!r}") from None
    return last


def assert_no_personal_data(payload: str) -> None:
    assert not re.search(r"\b\d{12}\b", payload), payload  # a citizen ID
    assert not re.search(r"(\+84|\b0)\d{9}\b", payload), payload  # a phone number
    assert "@" not in payload, payload  # an e-mail address
    assert "Nguyễn" not in payload, payload  # the applicant's name


async def test_a_dossier_goes_in_is_received_told_and_counted(
    platform, webhook_receiver: WebhookReceiver
) -> None:
    client, url, issuer, suffix, notification_env = platform
    # An agency subscribes to the dossier steps of the unit (its API key from the operator).
    command = [sys.executable, "-m", "services.notification.webhooks", "create-agency"]
    created = await asyncio.create_subprocess_exec(
        *command,
        *("--id", "so-khcn-hn", "--name", "Sở KH&CN Hà Nội"),
        env={**os.environ, **notification_env},
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await created.communicate()
    assert created.returncode == 0
    agency = {"Authorization": f"Bearer {output.decode().split()[-1]}"}
    subscription = await client.post(
        f"{url['notification']}/api/v1/webhooks/subscriptions",
        json={"url": webhook_receiver.url, "filters": {"unit_codes": ["SHTT"]}},
        headers=agency,
    )
    assert subscription.status_code == 201, subscription.text
    signing_secret = subscription.json()["secret"]

    submitted = await client.post(
        f"{url['intake']}/api/v1/dossiers", **multipart(dossier_json(), trademark_files())
    )
    assert submitted.status_code == 201, submitted.text
    code, secret = submitted.json()["dossier_code"], submitted.json()["tracking_secret"]

    officer = {"Authorization": f"Bearer {issuer.mint('officer-1', ['officer'], 'SHTT')}"}

    async def case_exists() -> bool:
        response = await client.get(f"{url['processing']}/api/v1/cases/{code}", headers=officer)
        return response.status_code == 200

    await eventually(case_exists)
    received = await client.post(
        f"{url['processing']}/api/v1/cases/{code}/receive", headers=officer, json={}
    )
    assert received.status_code == 200, received.text

    async def tracked_in_processing() -> dict | None:
        response = await client.get(
            f"{url['intake']}/api/v1/dossiers/{code}", params={"secret": secret}
        )
        body = response.json()
        return body if body["state"] == 4 and body["due_at"] and body["inbox"] else None

    view = await eventually(tracked_in_processing)
    assert view["state_label"] == "Đang xử lý"
    assert any(code in (message["body"] or "") or message["body"] for message in view["inbox"])

    admin = {"Authorization": f"Bearer {issuer.mint('leader', ['admin'], None)}"}
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    quarter = (today.month - 1) // 3 + 1

    async def counted() -> dict | None:
        response = await client.get(
            f"{url['reporting']}/api/v1/reports/quarterly",
            params={"year": today.year, "quarter": quarter},
            headers=admin,
        )
        counts = response.json()["ministry"]["counts"]
        return counts if counts.get("received") == 1 else None

    counts = await eventually(counted)
    assert counts["online"] == 1

    # Other agencies see the steps on the public stream, without any personal data.
    records = await read_until(
        KAFKA_BOOTSTRAP,
        PUBLIC_DOSSIER_STATUS_TOPIC + suffix,
        lambda rs: (
            {unwrap(CloudEvent.from_kafka(r.value, r.headers)).action for r in rs}
            >= {"submit", "receive"}
        ),
    )
    assert all(r.key == code.encode() for r in records)
    for record in records:
        assert_no_personal_data(record.value.decode())

    # The subscribed agency got the same steps over its webhook, signed.
    async def hooked() -> list | None:
        calls = webhook_receiver.delivered()
        actions = {call.event["data"]["action"] for call in calls}
        return calls if actions >= {"submit", "receive"} else None

    for call in await eventually(hooked):
        verify(signing_secret, call.headers, call.body, now=int(time.time()))
        assert call.event["subject"] == code
        assert_no_personal_data(call.body.decode())

    # The national portal holds the dossier, in processing, with its history.
    async def on_portal() -> dict | None:
        response = await client.get(f"{url['portal']}/_admin/dossiers/{code}")
        body = response.json() if response.status_code == 200 else None
        return body if body and str(body["dossier"]["TrangThaiHoSo"]) == "4" else None

    synced = await eventually(on_portal)
    assert synced["dossier"]["MaHoSo"] == code

"""The demo data (`devstack/demo.py`) against intake and processing as separate processes on the
test broker and database (their own topics and databases): a small run leaves dossiers in
several states across channels, as processing itself reports them."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devstack.config import PROJECT_ROOT
from devstack.demo import DemoResult, run_demo
from devstack.processes import ManagedProcess
from shared.runtime.auth import DevIssuer
from tests.e2e.test_platform import wait_ready
from tests.integration.test_devstack import free_ports
from tests.portal.browser.stack import delete_topics
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics

pytestmark = [pytest.mark.infra, pytest.mark.timeout(600)]
SERVICES = ("intake", "processing")


@pytest.fixture
async def services(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> AsyncIterator[tuple[dict[str, str], DevIssuer]]:
    token = uuid.uuid4().hex[:8]
    suffix = f".demo{token}"
    await create_suffixed_topics(kafka_bootstrap, suffix)
    issuer = DevIssuer(tmp_path / "issuer")
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    processes = []
    for service in SERVICES:
        settings = {
            "ENVIRONMENT": "test",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(ports[service]),
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "MONGO_URL": mongo_url,
            "MONGO_DATABASE": f"demo_{token}_{service}",
            "TOPIC_SUFFIX": suffix,
            "JWT_PUBLIC_KEY_FILE": str(issuer.public_key_path),
            **{key.upper(): str(value) for key, value in QUICK_CONSUMERS.items()},
        }
        if service == "intake":  # the demo's citizens come "through the portal"
            settings |= {"RELAY_POLL_SECONDS": "1", "TRUSTED_PROXIES": "127.0.0.1"}
        process = ManagedProcess(service, tmp_path / f"{service}.pid", tmp_path / f"{service}.log")
        process.start(
            [sys.executable, "-m", f"services.{service}"],
            env={f"DVC_{service.upper()}_{k}": v for k, v in settings.items()},
            cwd=PROJECT_ROOT,
        )
        processes.append(process)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for process in processes:
                await wait_ready(client, urls[process.name], process)
        yield urls, issuer
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop, 30)
        from pymongo import AsyncMongoClient

        mongo: AsyncMongoClient = AsyncMongoClient(mongo_url)
        try:
            for service in SERVICES:
                await mongo.drop_database(f"demo_{token}_{service}")
        finally:
            await mongo.close()
        await delete_topics(kafka_bootstrap, suffix)


async def test_the_demo_leaves_dossiers_in_several_states(services) -> None:
    urls, issuer = services
    said: list[str] = []
    result: DemoResult = await run_demo(
        urls["intake"], urls["processing"], count=24, issuer=issuer, seed=3, progress=said.append
    )
    assert not result.failures, result.failures
    assert len(result.dossiers) == 24
    states = result.states()
    assert len(states) >= 5, states
    assert {d["channel"] for d in result.dossiers} >= {1, 2}
    assert "demo: 24 dossiers" in said[0]
    report = result.report()
    assert "24 dossiers added" in report and "by state:" in report

    # Processing has them as the demo says (each unit's officer reads its own).
    async with httpx.AsyncClient(timeout=30) as client:
        for dossier in result.dossiers:
            token = issuer.mint("reader", ["officer"], dossier["unit"])
            case = await client.get(
                f"{urls['processing']}/api/v1/cases/{dossier['code']}",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert case.status_code == 200, case.text
            found = case.json()
            if dossier["target"] == 2 and found["state"] == 4:
                # A paper dossier meant to wait as received (2) whose handover to the unit was
                # due by the working calendar: processing's deadline scanner handed it on (4),
                # before or after the demo read it (which depends on the day and the hour).
                steps = [(step["action"], step["actor"]) for step in found["history"]]
                assert ("start_processing", "system") in steps, steps
            else:
                assert found["state"] == dossier["state"], found
    # Walked where they were meant to go (a withdrawal may still be on its way; a paper dossier
    # the scanner handed on was checked above).
    missed = [
        d
        for d in result.dossiers
        if d["state"] != d["target"] and d["target"] != 7 and (d["target"], d["state"]) != (2, 4)
    ]
    assert not missed, missed

    # Twice is fine: it adds more.
    again = await run_demo(
        urls["intake"], urls["processing"], count=3, issuer=issuer, seed=4, progress=said.append
    )
    assert len(again.dossiers) == 3 and not again.failures
    assert not {d["code"] for d in again.dossiers} & {d["code"] for d in result.dossiers}

"""The four services running for real (uvicorn, their lifespans: consumers, relays, workers) on
the test broker and database, one topic suffix and one database each, seeded so that the ids in
paths exist: a dossier submitted online (and received by processing as a case), an agency with
its API key, a webhook subscription and a replay of it."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from shared.runtime.auth import DevIssuer
from tests.contract.documents import SERVICES, create
from tests.intake_samples import TRADEMARK, dossier_json, trademark_files
from tests.integration.test_devstack import free_ports
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing answers there


@dataclass
class Platform:
    urls: dict[str, str]
    apps: dict[str, FastAPI]
    issuer: DevIssuer
    loop: asyncio.AbstractEventLoop
    ids: dict[str, str] = field(default_factory=dict)  # path parameter → a real value
    secret: str = ""
    api_key: str = ""

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run `coroutine` on the services' event loop (their clients belong to it)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def staff(self, *roles: str, unit: str | None = None) -> dict[str, str]:
        token = self.issuer.mint("contract-tester", list(roles), unit, name="Kiểm thử hợp đồng")
        return {"Authorization": f"Bearer {token}"}


def settings_for(service: str, token: str, kafka: str, mongo: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "kafka_bootstrap": kafka,
        "mongo_url": mongo,
        "mongo_database": f"test_contract_{token}_{service}",
        "topic_suffix": f".{token}",
        "consumer_backoff_seconds": 0.05,
        **QUICK_CONSUMERS,
    }
    extra: dict[str, dict[str, Any]] = {
        "intake": {
            "submissions_per_minute": 100_000,
            "tracking_per_minute": 100_000,
            "wrong_secrets_allowed": 100_000,
            "relay_poll_seconds": 0.2,
            "processing_base_url": UNREACHABLE,
            "public_base_url": "https://dichvucong.most.gov.vn",
        },
        "processing": {"outbox_poll_seconds": 0.2, "scanner_enabled": False},
        "notification": {
            "sms_gateway_url": f"{UNREACHABLE}/sms",
            "smtp_port": 9,
            "delivery_max_attempts": 1,
            "delivery_backoff_seconds": 0,
            "webhook_allow_private_urls": True,  # the subscription's receiver is local
            "webhook_retry_schedule_seconds": [3600.0],
            "portal_enabled": True,  # the national portal is away: syncs wait and retry
            "portal_url": UNREACHABLE,
            "portal_backoff_seconds": 3600.0,
        },
    }
    return {**common, **extra.get(service, {})}


@contextmanager
def running_platform(kafka: str, mongo: str, directory: Path, token: str) -> Iterator[Platform]:
    asyncio.run(create_suffixed_topics(kafka, f".{token}"))
    issuer = DevIssuer(directory / "issuer")
    apps = {
        service: create(
            service, issuer.public_key_path, **settings_for(service, token, kafka, mongo)
        )
        for service in SERVICES
    }
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                apps[s], host="127.0.0.1", port=ports[s], log_config=None, access_log=False
            )
        )
        for s in SERVICES
    ]
    loop = asyncio.new_event_loop()

    async def serve_all() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    thread = threading.Thread(target=loop.run_until_complete, args=(serve_all(),), daemon=True)
    thread.start()
    platform = Platform({s: f"http://127.0.0.1:{p}" for s, p in ports.items()}, apps, issuer, loop)
    try:
        deadline = time.monotonic() + 90
        while not all(server.started for server in servers):
            assert thread.is_alive(), "a service did not start (see the log above)"
            assert time.monotonic() < deadline, "the services did not start within 90 s"
            time.sleep(0.1)
        seed(platform)
        yield platform
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(timeout=90)
        loop.close()
        from pymongo import MongoClient

        with MongoClient(mongo) as client:
            for service in SERVICES:
                client.drop_database(f"test_contract_{token}_{service}")


def seed(platform: Platform) -> None:
    admin = platform.staff("admin")
    with httpx.Client(timeout=30) as client:
        submitted = client.post(
            f"{platform.urls['intake']}/api/v1/dossiers",
            data={"dossier": dossier_json()},
            files=trademark_files(),
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert submitted.status_code == 201, submitted.text
        code = submitted.json()["dossier_code"]
        platform.secret = submitted.json()["tracking_secret"]
        case_url = f"{platform.urls['processing']}/api/v1/cases/{code}"
        deadline = time.monotonic() + 60
        while client.get(case_url, headers=admin).status_code != 200:
            assert time.monotonic() < deadline, "processing never received the dossier"
            time.sleep(0.2)

        webhooks = platform.apps["notification"].state.webhooks
        platform.api_key = platform.run(webhooks.store.create_agency("contract", "Kiểm thử"))
        agency = {"X-API-Key": platform.api_key}
        hooks = f"{platform.urls['notification']}/api/v1/webhooks/subscriptions"
        subscription = client.post(hooks, json={"url": f"{UNREACHABLE}/hook"}, headers=agency)
        assert subscription.status_code == 201, subscription.text
        subscription_id = subscription.json()["id"]
        replay = client.post(
            f"{hooks}/{subscription_id}/replay",
            json={"since": "2026-01-01T00:00:00Z"},
            headers=agency,
        )
        assert replay.status_code == 202, replay.text
    platform.ids = {
        "code": code,
        "dossier_code": code,
        "procedure_code": TRADEMARK,
        "subscription_id": subscription_id,
        "replay_id": replay.json()["id"],
    }

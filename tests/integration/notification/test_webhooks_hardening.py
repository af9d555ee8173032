"""Webhook hardening (issue 14) end to end: a name rebinding to an inside address between the
check and the connection, a signing secret no key opens at start-up, an agency's keys revoked,
and replays bounded per agency. The service in-process against the real broker and database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.fernet import Fernet
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.notification.main import create_app
from services.notification.settings import NotificationSettings
from services.notification.webhooks.adapters.sealing import SecretBox
from services.notification.webhooks.adapters.url_check import Resolver
from services.notification.webhooks.dispatcher import PAUSED_SECRET_UNREADABLE
from services.notification.webhooks.domain.signing import verify
from services.notification.webhooks.domain.urls import UrlRules
from tests.factories import dossier_code
from tests.integration.notification.conftest import eventually, running
from tests.integration.notification.servers import WebhookReceiver
from tests.integration.notification.steps import publish_steps

SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def other_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


async def agency(app: FastAPI, agency_id: str = "so-khcn-hn") -> dict[str, str]:
    key = await app.state.webhooks.store.create_agency(agency_id, "Sở KH&CN Hà Nội")
    return {"Authorization": f"Bearer {key}"}


async def subscribe(client: httpx.AsyncClient, auth: dict[str, str], url: str) -> dict[str, Any]:
    answer = await client.post(SUBSCRIPTIONS, json={"url": url}, headers=auth)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def log_of(client: httpx.AsyncClient, auth: dict[str, str], sub_id: str) -> list[Any]:
    answer = await client.get(f"{SUBSCRIPTIONS}/{sub_id}/deliveries", headers=auth)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def _ready(value: Any) -> Any:
    return value


@asynccontextmanager
async def running_resolving(
    settings: NotificationSettings, rules: UrlRules, resolver: Resolver
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service with other URL rules and a resolver of the test's (the registry and the
    sender share them)."""
    app = create_app(settings)
    urls = app.state.webhooks.urls
    urls.rules, urls.resolver = rules, resolver
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notification") as c:
            yield app, c


class RebindingResolver:
    """A name that answers a public address to its first lookup and the inside one after."""

    def __init__(self, inside: str) -> None:
        self.inside = inside
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        answer = "93.184.215.14" if not self.lookups else self.inside
        self.lookups.append(answer)
        return [answer]


async def test_a_name_rebinding_to_an_inside_address_after_the_check_reaches_nothing(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    # The receiver stands for an inside service; public addresses only, but any port and plain
    # http so that it would be reachable if the connection went where the second lookup says.
    rules = UrlRules(plain_http=True, ports=None)
    resolver = RebindingResolver("127.0.0.1")
    port = urlsplit(receiver.url).port
    async with running_resolving(hooks_settings, rules, resolver) as (app, client):
        auth = await agency(app)
        sub = await subscribe(client, auth, f"http://hooks.agency.test:{port}/hooks/dvc")
        events = await publish_steps(producer, hooks_settings, [dossier_code(80)])

        async def all_failed() -> list[Any]:
            log = await log_of(client, auth, sub["id"])
            return (
                log if len(log) == len(events) and all(e["status"] == "failed" for e in log) else []
            )

        failed = await eventually(all_failed)
    assert receiver.calls == []  # never connected to the address the check did not see
    assert resolver.lookups[0] == "93.184.215.14" and set(resolver.lookups[1:]) == {"127.0.0.1"}
    assert {e["last_error"] for e in failed} == {
        "refused: the host resolves to a non-public address (127.0.0.1)"
    }


async def test_a_secret_no_key_opens_pauses_its_subscription_and_the_service_starts(
    hooks_settings: NotificationSettings,
    producer: AIOKafkaProducer,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    async with running(hooks_settings) as (app, client):
        auth = await agency(app)
        healthy = await subscribe(client, auth, receiver.url)
        lost = await subscribe(client, auth, other_receiver.url)
        # Sealed with a key dropped from DVC_NOTIFICATION_WEBHOOK_SEALING_KEYS too early.
        dropped = SecretBox(Fernet.generate_key().decode()).seal(lost["secret"])
        await app.state.webhooks.store.update_subscription(lost["id"], {"sealed_secret": dropped})

    codes = [dossier_code(n) for n in (81, 82)]
    async with running(hooks_settings) as (app, client):  # starts
        path = f"{SUBSCRIPTIONS}/{lost['id']}"
        events = await publish_steps(producer, hooks_settings, codes)
        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)))

        async def paused() -> dict[str, Any] | None:
            found = (await client.get(path, headers=auth)).json()
            return found if found["status"] == "paused" else None

        shown = await eventually(paused)
        assert shown["pause_reason"] == PAUSED_SECRET_UNREADABLE
        labels = {"subscription": lost["id"], "agency": "so-khcn-hn"}
        assert REGISTRY.get_sample_value("dvc_webhook_subscription_paused", labels) == 1
        assert other_receiver.calls == []
        refused = await client.post(f"{path}/resume", headers=auth)
        assert refused.status_code == 409, refused.text
        assert "rotate" in refused.json()["detail"]
        pending = await log_of(client, auth, lost["id"])
        assert len(pending) == len(events) and {e["status"] for e in pending} == {"pending"}

        rotated = await client.post(f"{path}/rotate-secret", headers=auth)
        assert rotated.status_code == 200, rotated.text
        await eventually(lambda: _ready(len(other_receiver.delivered()) == len(events)))
        for call in other_receiver.calls:  # the deliveries waited, signed with the new secret
            verify(rotated.json()["secret"], call.headers, call.body, now=int(time.time()))
        assert (await client.get(path, headers=auth)).json()["status"] == "active"
        assert REGISTRY.get_sample_value("dvc_webhook_subscription_paused", labels) == 0
    assert healthy["id"] != lost["id"]


async def test_revoking_an_agencys_keys_stops_its_deliveries(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    settings = hooks_settings.model_copy(
        update={"webhook_retry_schedule_seconds": [0.2] * 50, "webhook_breaker_failures": 1000}
    )
    receiver.mode = "fail"  # the deliveries stay pending, retried
    async with running(settings) as (app, client):
        store = app.state.webhooks.store
        auth = await agency(app)
        sub = await subscribe(client, auth, receiver.url)

        # A rotation: a second key, then the older ones revoked; nothing else changes.
        await asyncio.sleep(0.01)  # a later creation time
        new_auth = await agency(app)
        assert await store.revoke_keys("so-khcn-hn", keep_newest=True) == 1
        assert (await client.get(SUBSCRIPTIONS, headers=auth)).status_code == 401
        assert (await client.get(SUBSCRIPTIONS, headers=new_auth)).status_code == 200
        assert (await store.subscription(sub["id"]))["status"] == "active"

        events = await publish_steps(producer, settings, [dossier_code(83), dossier_code(84)])
        await eventually(lambda: _ready(len(receiver.calls) >= 4))

        async def recorded() -> bool:
            found = await store.deliveries.count_documents({"subscription_id": sub["id"]})
            return bool(found == len(events))

        await eventually(recorded)
        assert await store.revoke_keys("so-khcn-hn") == 1  # the last key: cut off
        assert (await client.get(SUBSCRIPTIONS, headers=new_auth)).status_code == 401
        await eventually(lambda: _ready(sub["id"] not in app.state.webhooks.dispatcher.live))
        receiver.mode = "ok"
        await publish_steps(producer, settings, [dossier_code(85)])
        await asyncio.sleep(1.0)  # several retry periods and refreshes
        assert receiver.delivered() == []
        stored = await store.subscription(sub["id"])
        assert (stored["status"], stored["disabled_reason"]) == ("disabled", "agency keys revoked")
        deliveries = await store.deliveries.find({"subscription_id": sub["id"]}).to_list()
        assert len(deliveries) == len(events)
        assert {(d["status"], d["last_error"]) for d in deliveries} == {
            ("failed", "agency keys revoked")
        }


async def test_replays_are_bounded_per_agency(
    hooks_settings: NotificationSettings, receiver: WebhookReceiver
) -> None:
    settings = hooks_settings.model_copy(update={"webhook_max_replays_per_agency": 1})
    async with running(settings) as (app, client):
        auth = await agency(app)
        other = await agency(app, "so-khcn-hcm")
        sub = await subscribe(client, auth, receiver.url)
        other_sub = await subscribe(client, other, receiver.url)
        jobs = app.state.webhooks.replay_jobs
        now = datetime.now(UTC)
        # One replay of the agency running (here, or on another replica).
        await jobs.insert(
            {
                "_id": "running-elsewhere",
                "subscription_id": sub["id"],
                "agency_id": "so-khcn-hn",
                "since": now - timedelta(days=1),
                "status": "running",
                "enqueued": 0,
                "created_at": now,
                "heartbeat_at": now,
            }
        )
        since = {"since": (now - timedelta(minutes=5)).isoformat()}
        refused = await client.post(f"{SUBSCRIPTIONS}/{sub['id']}/replay", json=since, headers=auth)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] and "at most 1" in refused.json()["detail"]
        other_agency = await client.post(
            f"{SUBSCRIPTIONS}/{other_sub['id']}/replay", json=since, headers=other
        )
        assert other_agency.status_code == 202, other_agency.text

        # A job whose heartbeat stopped (its replica ended) no longer counts.
        await jobs.update("running-elsewhere", {"heartbeat_at": now - timedelta(minutes=30)})
        started = await client.post(f"{SUBSCRIPTIONS}/{sub['id']}/replay", json=since, headers=auth)
        assert started.status_code == 202, started.text

        async def finished() -> bool:
            path = f"{SUBSCRIPTIONS}/{sub['id']}/replays/{started.json()['id']}"
            return bool((await client.get(path, headers=auth)).json()["status"] == "done")

        await eventually(finished)
        again = await client.post(f"{SUBSCRIPTIONS}/{sub['id']}/replay", json=since, headers=auth)
        assert again.status_code == 202, again.text  # the finished one freed its place

"""Webhook subscriptions end to end: the notification service in-process against the real broker
and database, agencies' endpoints as real local HTTP servers (with failure injection)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.notification.settings import NotificationSettings
from services.notification.webhooks.domain.signing import InvalidSignature, verify
from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierState
from shared.contracts.topics import PUBLIC_DOSSIER_STATUS_TOPIC, WEBHOOK_GROUP, dead_letter_topic
from tests.factories import dossier_code, submitted
from tests.integration.notification.conftest import eventually, publish, running
from tests.integration.notification.servers import WebhookReceiver
from tests.integration.notification.steps import public_event, publish_steps
from tests.kafka_helpers import read_records


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


async def agency(app: Any, agency_id: str = "so-khcn-hn") -> dict[str, str]:
    key = await app.state.webhooks.store.create_agency(agency_id, "Sở KH&CN Hà Nội")
    return {"Authorization": f"Bearer {key}"}


async def subscribe(
    client: httpx.AsyncClient, auth: dict[str, str], url: str, **filters: list[str]
) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/webhooks/subscriptions", json={"url": url, "filters": filters}, headers=auth
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def ids_by_dossier(calls: list[Any]) -> dict[str, list[str]]:
    steps: dict[str, list[str]] = {}
    for call in calls:
        event = call.event
        steps.setdefault(event["subject"], []).append(event["data"]["action"])
    return steps


def delivered_ids(calls: list[Any]) -> set[str]:
    return {call.headers["webhook-id"] for call in calls}


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_signed_deliveries_reach_the_matching_subscribers_in_order_per_dossier(
    hooks_settings: NotificationSettings,
    producer: AIOKafkaProducer,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    receiver.fail_first = 2  # two retried failures must not reorder anything
    codes = [dossier_code(n) for n in (1, 2, 3)]
    async with running(hooks_settings) as (app, client):
        auth = await agency(app)
        unit_sub = await subscribe(client, auth, receiver.url, unit_codes=["G12"])
        await subscribe(client, auth, other_receiver.url, event_types=["receive"])
        events = await publish_steps(producer, hooks_settings, codes)
        await publish_steps(producer, hooks_settings, [dossier_code(9)], unit="G99")

        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)))
        await eventually(lambda: _ready(len(other_receiver.delivered()) == 4))

        by_dossier = ids_by_dossier(receiver.delivered())
        assert by_dossier == {code: ["submit", "receive", "start_processing"] for code in codes}
        assert {c.event["data"]["action"] for c in other_receiver.delivered()} == {"receive"}
        for call in receiver.calls:  # every attempt is signed, and verifies
            verify(unit_sub["secret"], call.headers, call.body, now=int(time.time()))
            assert call.headers["content-type"] == "application/cloudevents+json"
        first = receiver.delivered()[0]
        assert first.headers["webhook-id"] == first.event["id"]
        assert first.event["type"] == "vn.gov.most.dvc.public.dossier-status.v1"
        with pytest.raises(InvalidSignature):
            verify(unit_sub["secret"], first.headers, first.body + b" ", now=int(time.time()))
        with pytest.raises(InvalidSignature):  # a captured request replayed later
            verify(unit_sub["secret"], first.headers, first.body, now=int(time.time()) + 600)

        async def logged() -> list[dict[str, Any]]:  # outcomes are written a moment later
            path = f"/api/v1/webhooks/subscriptions/{unit_sub['id']}/deliveries"
            entries = (await client.get(path, headers=auth)).json()
            return entries if {e["status"] for e in entries} == {"delivered"} else []

        entries = await eventually(logged)
        assert len(entries) == len(events)
        assert sorted(e["attempts"] for e in entries)[-1] >= 2  # the retried ones
        assert all("body" not in e for e in entries)  # metadata only


async def test_the_registry_refuses_bad_keys_urls_and_filters(
    settings: NotificationSettings,
) -> None:
    strict = settings.model_copy(update={"webhook_allow_private_urls": False})
    async with running(strict) as (app, client):
        auth = await agency(app)
        other = await agency(app, "so-khcn-hcm")
        path = "/api/v1/webhooks/subscriptions"
        anonymous = await client.get(path)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        forged = await client.get(path, headers={"Authorization": "Bearer dvcak_forged"})
        assert forged.status_code == 401

        for url, reason in [
            ("http://203.0.113.10/hook", "https"),
            ("https://127.0.0.1/hook", "non-public"),
            ("https://169.254.169.254/latest/meta-data", "non-public"),
            ("https://10.1.2.3/hook", "non-public"),
            ("https://[::1]/hook", "non-public"),
            ("https://user:pw@198.51.100.7/hook", "credentials"),
            ("ftp://example.org/hook", "https"),
        ]:
            answer = await client.post(path, json={"url": url}, headers=auth)
            assert answer.status_code == 422, url
            assert reason in answer.json()["detail"], (url, answer.json())

        unknown = await client.post(
            path,
            json={"url": "https://8.8.8.8/hook", "filters": {"event_types": ["explode"]}},
            headers=auth,
        )
        assert unknown.status_code == 422 and "explode" in unknown.json()["detail"]
        extra = await client.post(path, json={"url": "https://8.8.8.8/h", "x": 1}, headers=auth)
        assert extra.status_code == 422

        created = await client.post(path, json={"url": "https://8.8.8.8/hook"}, headers=auth)
        assert created.status_code == 201, created.text
        sub_id = created.json()["id"]
        assert created.json()["secret"].startswith("whsec_")
        assert "secret" not in (await client.get(f"{path}/{sub_id}", headers=auth)).json()
        stored = await app.state.webhooks.store.subscription(sub_id)
        assert created.json()["secret"] not in str(stored)  # sealed at rest
        assert app.state.webhooks.box.open(stored["sealed_secret"]) == created.json()["secret"]
        assert (await client.get(f"{path}/{sub_id}", headers=other)).status_code == 404
        assert (await client.delete(f"{path}/{sub_id}", headers=other)).status_code == 404
        stored = await app.state.webhooks.store.api_keys.find().to_list()
        key = auth["Authorization"].removeprefix("Bearer ")
        assert all(key not in str(document) for document in stored)  # hashed at rest


async def test_failed_deliveries_are_retried_then_failed_and_a_redrive_delivers_them(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    receiver.mode = "fail"
    code = dossier_code(4)
    async with running(hooks_settings) as (app, client):
        auth = await agency(app)
        sub = await subscribe(client, auth, receiver.url)
        path = f"/api/v1/webhooks/subscriptions/{sub['id']}"
        events = await publish_steps(producer, hooks_settings, [code])

        async def all_failed() -> list[dict[str, Any]]:
            log = (await client.get(f"{path}/deliveries?status=failed", headers=auth)).json()
            return log if len(log) == len(events) else []

        failed = await eventually(all_failed)
        attempts = 1 + len(hooks_settings.webhook_retry_schedule_seconds)
        assert {(e["attempts"], e["last_status_code"]) for e in failed} == {(attempts, 500)}
        # Order per dossier: the later steps waited for the first one's retries.
        assert [c.event["data"]["action"] for c in receiver.calls][:attempts] == ["submit"] * 4

        receiver.mode = "ok"
        redriven = await client.post(f"{path}/redrive", headers=auth)
        assert redriven.status_code == 202 and redriven.json() == {"redriven": len(events)}
        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)))
        assert ids_by_dossier(receiver.delivered()) == {
            code: ["submit", "receive", "start_processing"]
        }

        async def all_delivered() -> bool:  # outcomes are written in batches, a moment later
            log = (await client.get(f"{path}/deliveries?status=delivered", headers=auth)).json()
            return len(log) == len(events)

        await eventually(all_delivered)


async def test_an_unhealthy_subscriber_is_paused_and_resumes_when_healthy(
    hooks_settings: NotificationSettings,
    producer: AIOKafkaProducer,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    settings = hooks_settings.model_copy(
        update={
            "webhook_breaker_failures": 3,
            "webhook_breaker_probe_seconds": 60,  # no probe during the test: resume by hand
            "webhook_retry_schedule_seconds": [0.05] * 20,
        }
    )
    receiver.mode = "fail"
    codes = [dossier_code(n) for n in (5, 6, 7)]
    async with running(settings) as (app, client):
        auth = await agency(app)
        sub = await subscribe(client, auth, receiver.url)
        await subscribe(client, auth, other_receiver.url)
        path = f"/api/v1/webhooks/subscriptions/{sub['id']}"
        events = await publish_steps(producer, settings, codes)

        async def paused() -> bool:
            return (await client.get(path, headers=auth)).json()["status"] == "paused"

        await eventually(paused)
        labels = {"subscription": sub["id"], "agency": "so-khcn-hn"}
        assert gauge("dvc_webhook_subscription_paused", **labels) == 1
        # The healthy subscriber got everything meanwhile.
        await eventually(lambda: _ready(len(other_receiver.delivered()) == len(events)))
        calls_when_paused = len(receiver.calls)
        assert calls_when_paused <= settings.webhook_breaker_failures + 8  # in-flight ones

        receiver.mode = "ok"
        resumed = await client.post(f"{path}/resume", headers=auth)
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)))
        assert ids_by_dossier(receiver.delivered()) == {
            code: ["submit", "receive", "start_processing"] for code in codes
        }
        assert gauge("dvc_webhook_subscription_paused", **labels) == 0

        async def statuses() -> set[str]:
            return {
                e["status"] for e in (await client.get(f"{path}/deliveries", headers=auth)).json()
            }

        await eventually(lambda: _equals(statuses(), {"delivered"}))  # nothing lost while paused


async def test_a_paused_subscriber_is_probed_and_resumed_automatically(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    settings = hooks_settings.model_copy(
        update={"webhook_breaker_failures": 2, "webhook_retry_schedule_seconds": [0.05] * 50}
    )
    receiver.mode = "hang"  # answers after the client's time-out
    receiver.hang_seconds = 1.0
    async with running(settings) as (app, client):
        auth = await agency(app)
        sub = await subscribe(client, auth, receiver.url)
        path = f"/api/v1/webhooks/subscriptions/{sub['id']}"
        events = await publish_steps(producer, settings, [dossier_code(8)])

        async def status() -> str:
            return str((await client.get(path, headers=auth)).json()["status"])

        await eventually(lambda: _equals(status(), "paused"))
        receiver.mode = "ok"
        await eventually(lambda: _equals(status(), "active"))
        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)))


async def test_one_slow_subscriber_does_not_delay_the_others(
    hooks_settings: NotificationSettings,
    producer: AIOKafkaProducer,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    settings = hooks_settings.model_copy(
        update={"webhook_workers_per_subscription": 2, "webhook_timeout_seconds": 5.0}
    )
    receiver.mode = "slow"
    receiver.slow_seconds = 0.5
    codes = [dossier_code(n) for n in range(10, 20)]
    async with running(settings) as (app, client):
        auth = await agency(app)
        await subscribe(client, auth, receiver.url)
        await subscribe(client, auth, other_receiver.url)
        events = await publish_steps(producer, settings, codes)
        await eventually(lambda: _ready(len(other_receiver.delivered()) == len(events)))
        # 30 deliveries at 0.5 s with 2 workers need 7.5 s: the fast one did not wait for them.
        assert len(receiver.delivered()) < len(events) / 2
        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)), within=30)


async def test_replay_delivers_again_every_event_since_a_moment(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    codes = [dossier_code(n) for n in (21, 22)]
    async with running(hooks_settings) as (app, client):
        auth = await agency(app)
        before = datetime.now(UTC) - timedelta(seconds=1)
        # Published before the subscription existed (or lost in a long outage).
        early = await publish_steps(producer, hooks_settings, codes)
        sub = await subscribe(client, auth, receiver.url, unit_codes=["G12"])
        path = f"/api/v1/webhooks/subscriptions/{sub['id']}"
        late = await publish_steps(producer, hooks_settings, [dossier_code(23)])
        late_ids = {e.id for e in late}
        await eventually(lambda: _ready(late_ids <= delivered_ids(receiver.delivered())))

        async def settled() -> bool:  # nothing in flight (the early events may have gone live)
            log = (await client.get(f"{path}/deliveries", headers=auth)).json()
            return bool(log) and {e["status"] for e in log} == {"delivered"}

        await eventually(settled)
        replay_started = time.time()
        started = await client.post(
            f"{path}/replay", json={"since": before.isoformat()}, headers=auth
        )
        assert started.status_code == 202, started.text
        job = started.json()

        async def done() -> dict[str, Any] | None:
            found = (await client.get(f"{path}/replays/{job['id']}", headers=auth)).json()
            return found if found["status"] == "done" else None

        finished = await eventually(done)
        assert finished["enqueued"] == len(early) + len(late)
        every_id = {e.id for e in early + late}  # delivered again with their original ids

        def replayed() -> list[Any]:
            return [c for c in receiver.delivered() if c.received_at >= replay_started]

        await eventually(lambda: _ready(delivered_ids(replayed()) == every_id))
        assert ids_by_dossier(replayed())[codes[0]] == ["submit", "receive", "start_processing"]
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        refused = await client.post(f"{path}/replay", json={"since": future}, headers=auth)
        assert refused.status_code == 422


async def test_a_malformed_public_record_is_dead_lettered_and_redelivery_sends_once(
    hooks_settings: NotificationSettings,
    producer: AIOKafkaProducer,
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    topic = hooks_settings.topic(PUBLIC_DOSSIER_STATUS_TOPIC)
    async with running(hooks_settings) as (app, client):
        auth = await agency(app)
        await subscribe(client, auth, receiver.url)
        await producer.send_and_wait(topic, b"{not json", key=b"x", headers=[])
        event = public_event(dossier_code(30), "submit", DossierState.SUBMITTED)
        await publish(producer, topic, event)
        await publish(producer, topic, event)  # the same event again (a producer retry)
        marker = public_event(dossier_code(30), "receive", DossierState.RECEIVED)
        await publish(producer, topic, marker)
        await eventually(lambda: _ready(len(receiver.delivered()) == 2))
        [dead] = await read_records(kafka_bootstrap, dead_letter_topic(topic, WEBHOOK_GROUP), 1)
        assert dict(dead.headers)["dlq_reason"] == b"malformed"
    assert [c.headers["webhook-id"] for c in receiver.delivered()] == [event.id, marker.id]


async def test_internal_steps_reach_a_webhook_through_the_public_stream(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    code = dossier_code(40)
    async with running(hooks_settings) as (app, client):
        auth = await agency(app)
        await subscribe(client, auth, receiver.url)
        await publish(
            producer, hooks_settings.topic(submitted().topic), wrap(submitted(code), "/dvc/intake")
        )
        [call] = await eventually(lambda: _ready(receiver.delivered()))
    data = call.event["data"]
    assert (data["dossier_code"], data["action"], data["state"]) == (code, "submit", 1)
    assert b"0912345678" not in call.body and "Nguyễn" not in call.body.decode()


async def _ready(value: Any) -> Any:
    return value


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    yield


async def test_deliveries_beyond_the_queue_bound_wait_in_the_database_and_all_go_out(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    settings = hooks_settings.model_copy(update={"webhook_max_queued_per_subscription": 10})
    codes = [dossier_code(n) for n in range(50, 62)]  # 36 deliveries, 10 in memory at most
    async with running(settings) as (app, client):
        auth = await agency(app)
        await subscribe(client, auth, receiver.url)
        events = await publish_steps(producer, settings, codes)
        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)), within=30)
    assert ids_by_dossier(receiver.delivered()) == {
        code: ["submit", "receive", "start_processing"] for code in codes
    }
    assert len(delivered_ids(receiver.delivered())) == len(events)  # each once


async def test_deliveries_pending_at_shutdown_go_out_after_a_restart(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, receiver: WebhookReceiver
) -> None:
    settings = hooks_settings.model_copy(
        update={"webhook_retry_schedule_seconds": [0.1] * 100, "webhook_breaker_failures": 1000}
    )
    receiver.mode = "fail"
    codes = [dossier_code(n) for n in (70, 71)]
    async with running(settings) as (app, client):
        auth = await agency(app)
        sub = await subscribe(client, auth, receiver.url)
        events = await publish_steps(producer, settings, codes)
        await eventually(lambda: _ready(len(receiver.calls) >= 4))  # failing, retrying
    receiver.mode = "ok"
    async with running(settings) as (app, client):  # the events were consumed before
        await eventually(lambda: _ready(len(receiver.delivered()) == len(events)))
        log = f"/api/v1/webhooks/subscriptions/{sub['id']}/deliveries"

        async def all_delivered() -> bool:
            entries = (await client.get(log, headers=auth)).json()
            return len(entries) == len(events) and {e["status"] for e in entries} == {"delivered"}

        await eventually(all_delivered)
    assert ids_by_dossier(receiver.delivered()) == {
        code: ["submit", "receive", "start_processing"] for code in codes
    }

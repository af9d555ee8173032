"""The agencies' webhook samples (examples/agencies/webhook_receiver.py, register_webhook.py)
against the real notification service: in-process on the real broker and database, its API served
by uvicorn on a real local port, the sample receiver on another one. The API key comes from the
operator command, the subscription from the sample client, the deliveries are the service's own."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import HTTPError

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from examples.agencies.register_webhook import ApiError, Registry
from examples.agencies.webhook_receiver import WebhookReceiver
from services.notification.settings import NotificationSettings
from services.notification.webhooks.domain.signing import new_secret, signature_headers
from tests.factories import dossier_code
from tests.integration.notification.conftest import eventually, running
from tests.integration.notification.servers import free_port
from tests.integration.notification.steps import publish_steps

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def hooks_settings(hooks_settings: NotificationSettings) -> NotificationSettings:
    # The sample receiver runs in a thread of the test process: give it time to answer.
    return hooks_settings.model_copy(update={"webhook_timeout_seconds": 2.0})


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class SampleReceiver:
    """The sample receiver, with what it answered and what its worker handled recorded."""

    receiver: WebhookReceiver
    answers: list[Answer] = field(default_factory=list)
    handled: list[dict[str, Any]] = field(default_factory=list)

    def statuses(self) -> list[int]:
        return [a.status for a in self.answers]

    def actions_by_dossier(self) -> dict[str, list[str]]:
        steps: dict[str, list[str]] = {}
        for event in self.handled:
            steps.setdefault(event["subject"], []).append(event["data"]["action"])
        return steps


@pytest.fixture
def sample() -> Iterator[SampleReceiver]:
    lock = threading.Lock()
    record = SampleReceiver(WebhookReceiver("whsec_not-registered-yet", lambda e: None))
    receiver = record.receiver
    receiver.handle = record.handled.append
    accept = receiver.accept

    def recording(headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        status, reason = accept(headers, body)
        with lock:
            record.answers.append(Answer(status, {k.lower(): v for k, v in headers.items()}, body))
        return status, reason

    receiver.accept = recording  # type: ignore[method-assign]
    receiver.start()
    yield record
    receiver.stop()


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app (its lifespan already running) on a real local port, in this event loop."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _ready(server.started or task.done()))
    assert server.started, task.exception()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def operator_creates_agency(settings: NotificationSettings) -> str:
    """The documented operator command, run for real; returns the API key it prints."""
    env = {
        **os.environ,
        "DVC_NOTIFICATION_MONGO_URL": settings.mongo_url,
        "DVC_NOTIFICATION_MONGO_DATABASE": settings.database_name,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.notification.webhooks",
        "create-agency",
        "--id",
        "so-khcn-hn",
        "--name",
        "Sở KH&CN Hà Nội",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    [key] = [word for word in out.decode().split() if word.startswith("dvcak_")]
    return key


def post(url: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except HTTPError as exc:
        return exc.code


async def test_the_sample_receiver_verifies_real_deliveries_and_refuses_forgeries(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, sample: SampleReceiver
) -> None:
    key = await operator_creates_agency(hooks_settings)
    codes = [dossier_code(n) for n in (61, 62, 63)]
    async with running(hooks_settings) as (app, _), served(app) as base:
        registry = Registry(base, key)
        sub = await asyncio.to_thread(registry.subscribe, sample.receiver.url, unit_codes=["G12"])
        assert sub["secret"].startswith("whsec_") and sub["status"] == "active"
        sample.receiver.secrets = [sub["secret"]]
        before = datetime.now(UTC) - timedelta(seconds=1)
        events = await publish_steps(producer, hooks_settings, codes)
        await publish_steps(producer, hooks_settings, [dossier_code(64)], unit="G99")  # filtered

        await eventually(lambda: _ready(len(sample.handled) == len(events)))
        assert set(sample.statuses()) == {202}  # every delivery verified, none refused
        assert sample.actions_by_dossier() == {
            code: ["submit", "receive", "start_processing"] for code in codes
        }
        assert {e["id"] for e in sample.handled} == {e.id for e in events}

        # Forgeries and a replayed capture, straight at the sample receiver.
        genuine = sample.answers[0]
        forged = signature_headers(
            new_secret(), "evt-1", int(genuine.headers["webhook-timestamp"]), genuine.body
        )
        tampered = genuine.body.replace(b'"G12"', b'"G99"')
        assert tampered != genuine.body
        url = sample.receiver.url
        assert await asyncio.to_thread(post, url, forged, genuine.body) == 401
        assert await asyncio.to_thread(post, url, genuine.headers, tampered) == 401
        assert await asyncio.to_thread(post, url, {}, genuine.body) == 401
        assert await asyncio.to_thread(post, url, genuine.headers, genuine.body) == 200  # dup
        assert len(sample.handled) == len(events)

        # The delivery log, as the agency reads it.
        async def all_delivered() -> list[dict[str, Any]]:
            log = await asyncio.to_thread(registry.deliveries, sub["id"])
            return (
                log
                if len(log) == len(events) and {e["status"] for e in log} == {"delivered"}
                else []
            )

        log = await eventually(all_delivered)
        assert {e["event_id"] for e in log} == {e.id for e in events}

        # Replay: the same events again, with their ids; the receiver's deduplication drops them.
        job = await asyncio.to_thread(registry.replay, sub["id"], before)
        finished = await asyncio.to_thread(registry.wait_for_replay, sub["id"], job["id"], 60, 0.1)
        assert (finished["status"], finished["enqueued"]) == ("done", len(events))
        await eventually(lambda: _ready(sample.statuses().count(200) == 1 + len(events)))
        assert len(sample.handled) == len(events)

        # The sample client on the command line.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / "agencies" / "register_webhook.py"),
            "list",
            env={**os.environ, "DVC_API_BASE": base, "DVC_API_KEY": key},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        [listed] = json.loads(out)
        assert listed["id"] == sub["id"] and listed["url"] == sample.receiver.url
        assert "secret" not in listed


async def test_a_wrong_secret_fails_deliveries_and_a_redrive_after_the_fix_delivers_them(
    hooks_settings: NotificationSettings, producer: AIOKafkaProducer, sample: SampleReceiver
) -> None:
    key = await operator_creates_agency(hooks_settings)
    code = dossier_code(65)
    async with running(hooks_settings) as (app, _), served(app) as base:
        registry = Registry(base, key)
        sub = await asyncio.to_thread(registry.subscribe, sample.receiver.url)
        # The agency configured its receiver with another secret: every delivery gets 401, which
        # the platform does not retry (a refusal), and the log says so.
        events = await publish_steps(producer, hooks_settings, [code])

        async def failed() -> list[dict[str, Any]]:
            log = await asyncio.to_thread(registry.deliveries, sub["id"], status="failed")
            return log if len(log) == len(events) else []

        log = await eventually(failed)
        assert {(e["last_status_code"], e["attempts"]) for e in log} == {(401, 1)}
        assert sample.handled == [] and set(sample.statuses()) == {401}

        sample.receiver.secrets = [sub["secret"]]  # fixed
        assert await asyncio.to_thread(registry.redrive, sub["id"]) == len(events)
        await eventually(lambda: _ready(len(sample.handled) == len(events)))
        assert sample.actions_by_dossier() == {code: ["submit", "receive", "start_processing"]}

        # A rotation: the platform signs with the new secret at once; the receiver accepts the
        # new and the old one while its configuration changes.
        rotated = await asyncio.to_thread(registry.rotate_secret, sub["id"])
        assert rotated["secret"] != sub["secret"]
        sample.receiver.secrets = [rotated["secret"], sub["secret"]]
        [later] = (await publish_steps(producer, hooks_settings, [dossier_code(66)]))[:1]
        await eventually(lambda: _ready(later.id in {e["id"] for e in sample.handled}))

        resumed = await asyncio.to_thread(registry.resume, sub["id"])  # not paused: unchanged
        assert resumed["status"] == "active"
        with pytest.raises(ApiError) as refused:
            await asyncio.to_thread(Registry(base, "dvcak_forged").subscriptions)
        assert refused.value.status == 401 and "API" in refused.value.problem["title"]


async def _ready(value: Any) -> Any:
    return value

"""The payment callback answers the provider at once and completes the payment afterwards; a
repeated callback changes nothing, and a callback recorded before a crash is completed later."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer

from services.intake.adapters.memory import RecordingPaymentProvider
from services.intake.domain.payments import sign_callback
from services.intake.main import create_app
from shared.contracts.events import DossierState
from shared.contracts.topics import DOSSIER_PAID_TOPIC
from tests.integration.intake.test_tracking import (
    new_dossier,
    processing_says,
    wait_for_state,
)
from tests.service_harness import serve

T = TypeVar("T")


@pytest.fixture
async def payment(intake, monkeypatch) -> dict:
    """A level-4 dossier whose fee the unit asked for, and the payment the applicant started."""
    monkeypatch.setattr(intake.components.service.payments, "provider", RecordingPaymentProvider())
    code, secret = await new_dossier(intake)
    await processing_says(intake, code, DossierState.PAYMENT_REQUESTED, "request_payment")
    await wait_for_state(intake, code, secret, 6)
    started = await intake.client.post(
        f"/api/v1/dossiers/{code}/payments", params={"secret": secret}
    )
    assert started.status_code == 201, started.text
    return {"dossier_code": code, **started.json()}


def callback(intake, payment: dict, **changes) -> dict:
    """A signed callback for `payment` (`httpx` request arguments)."""
    timestamp = int(time.time())
    fields = {
        "transaction_id": payment["transaction_id"],
        "dossier_code": payment["dossier_code"],
        "amount_vnd": payment["amount_vnd"],
        "status": "success",
        "paid_at": datetime.now(UTC).isoformat(),
        "provider_reference": "REF-" + payment["transaction_id"][:8],
        "timestamp": timestamp,
        **changes,
    }
    body = json.dumps(fields).encode()
    signature = sign_callback(body, timestamp, intake.settings.payment_callback_key.encode())
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "X-Signature": signature,
            "X-Timestamp": str(timestamp),
        },
    }


async def post(intake, request: dict):
    return await asyncio.wait_for(
        intake.client.post("/api/v1/payments/callback", **request), timeout=10
    )


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """`probe()` once `done` holds for it (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            value = await probe()
            if done(value):
                return value
            await asyncio.sleep(0.05)


async def settled(intake, transaction_id: str) -> dict:
    """The payment once settled."""
    return await eventually(
        lambda: intake.components.store.get_payment(transaction_id),
        lambda payment: payment["status"] == "settled",
    )


async def published_paid_events(kafka_bootstrap: str, intake, code: str) -> int:
    """How many `dossier.paid` records of `code` the topic holds, once the dossier's outbox is
    empty (so that everything queued was published)."""
    dossiers = intake.components.store.dossiers
    await eventually(lambda: dossiers.find_one({"_id": code}), lambda d: not d["outbox_pending"])
    consumer = AIOKafkaConsumer(
        intake.topic(DOSSIER_PAID_TOPIC),
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = consumer.assignment()
        while not partitions:
            await consumer.getmany(timeout_ms=100)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        await consumer.seek_to_beginning(*partitions)
        count = 0
        async with asyncio.timeout(20):
            while [p for p, end in ends.items() if await consumer.position(p) < end]:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    count += sum(1 for record in batch if record.key == code.encode())
    finally:
        await consumer.stop()
    return count


async def paid_mark(intake, code: str) -> tuple[bool, int]:
    """Whether the dossier is marked paid, and how many times a payment was applied to it."""
    dossier = await intake.components.store.dossiers.find_one({"_id": code})
    applied = [i for i in dossier.get("applied_event_ids", []) if i.startswith("payment:")]
    return bool(dossier["status"].get("paid")), len(applied)


async def test_the_callback_is_answered_before_the_settlement_work(
    intake, payment, monkeypatch, kafka_bootstrap
) -> None:
    store = intake.components.store
    started, release = asyncio.Event(), asyncio.Event()
    mark_paid = store.mark_paid

    async def held_back(*args, **kwargs):
        started.set()
        await release.wait()
        return await mark_paid(*args, **kwargs)

    monkeypatch.setattr(store, "mark_paid", held_back)
    request = callback(intake, payment)
    response = await post(intake, request)  # answered while the settlement is held back
    assert response.status_code == 200, response.text
    assert response.json() == {"transaction_id": payment["transaction_id"], "status": "received"}
    await asyncio.wait_for(started.wait(), timeout=5)
    recorded = await store.get_payment(payment["transaction_id"])
    assert recorded["status"] == "callback_received" and recorded["callback_pending"] is True
    assert recorded["callback"]["provider_reference"] == "REF-" + payment["transaction_id"][:8]
    assert await paid_mark(intake, payment["dossier_code"]) == (False, 0)

    # The provider retries meanwhile (same body, and re-signed later): recorded already.
    assert (await post(intake, request)).status_code == 409
    assert (await post(intake, callback(intake, payment))).status_code == 409

    release.set()
    done = await settled(intake, payment["transaction_id"])
    assert "callback_pending" not in done and done["provider_reference"].startswith("REF-")
    assert await paid_mark(intake, payment["dossier_code"]) == (True, 1)
    assert await published_paid_events(kafka_bootstrap, intake, payment["dossier_code"]) == 1


async def test_a_repeated_callback_is_applied_once(intake, payment, kafka_bootstrap) -> None:
    request = callback(intake, payment)
    answers = await asyncio.gather(*(post(intake, request) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
    await settled(intake, payment["transaction_id"])
    # Completing again (a recovery pass meeting the task, another replica) changes nothing.
    assert await intake.components.service.settlement.settle(payment["transaction_id"]) is False
    assert await intake.components.service.settlement.recover() == 0
    assert (await post(intake, callback(intake, payment))).status_code == 409
    assert await paid_mark(intake, payment["dossier_code"]) == (True, 1)
    assert await published_paid_events(kafka_bootstrap, intake, payment["dossier_code"]) == 1


async def test_a_callback_recorded_before_a_crash_is_completed_at_the_next_start(
    intake, payment, monkeypatch, kafka_bootstrap
) -> None:
    # The process dies right after answering: the completion never runs.
    monkeypatch.setattr(
        intake.components.service.settlement, "schedule", lambda transaction_id: None
    )
    response = await post(intake, callback(intake, payment))
    assert response.status_code == 200, response.text
    await asyncio.sleep(0.2)
    pending = await intake.components.store.get_payment(payment["transaction_id"])
    assert pending["status"] == "callback_received" and pending["callback_pending"] is True
    assert await paid_mark(intake, payment["dossier_code"]) == (False, 0)

    # A new instance on the same database completes it in its start-up recovery pass.
    restarted = create_app(intake.settings.model_copy(update={"seed_catalogue": False}))
    async with serve(restarted):
        done = await settled(intake, payment["transaction_id"])
    assert done["provider_reference"].startswith("REF-")
    assert await paid_mark(intake, payment["dossier_code"]) == (True, 1)
    assert await published_paid_events(kafka_bootstrap, intake, payment["dossier_code"]) == 1
    # Nothing left: one indexed query.
    assert await intake.components.service.settlement.recover() == 0


async def test_a_recovery_pass_completes_a_completion_that_failed(
    intake, payment, monkeypatch
) -> None:
    store = intake.components.store
    failed = asyncio.Event()
    mark_paid = store.mark_paid

    async def database_hiccup(*args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise ConnectionError("database unreachable")
        return await mark_paid(*args, **kwargs)

    monkeypatch.setattr(store, "mark_paid", database_hiccup)
    assert (await post(intake, callback(intake, payment))).status_code == 200
    await asyncio.wait_for(failed.wait(), timeout=5)
    await asyncio.sleep(0.1)
    assert (await store.get_payment(payment["transaction_id"]))["callback_pending"] is True
    # The pass that runs at start-up and every `payment_recovery_seconds`:
    assert await intake.components.service.settlement.recover() == 1
    await settled(intake, payment["transaction_id"])
    assert await paid_mark(intake, payment["dossier_code"]) == (True, 1)


async def test_a_failed_payment_is_marked_failed(intake, payment) -> None:
    response = await post(intake, callback(intake, payment, status="failed", paid_at=None))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    failed = await intake.components.store.get_payment(payment["transaction_id"])
    assert failed["status"] == "failed" and "callback_pending" not in failed
    assert (await post(intake, callback(intake, payment))).status_code == 409  # no late success
    assert await paid_mark(intake, payment["dossier_code"]) == (False, 0)


async def test_a_wrong_amount_or_transaction_records_nothing(intake, payment) -> None:
    wrong_amount = await post(
        intake, callback(intake, payment, amount_vnd=payment["amount_vnd"] - 1)
    )
    assert wrong_amount.status_code == 422
    assert wrong_amount.headers["content-type"] == "application/problem+json"
    unknown = await post(intake, callback(intake, {**payment, "transaction_id": "unknown"}))
    assert unknown.status_code == 404
    assert (await intake.components.store.get_payment(payment["transaction_id"]))["status"] == (
        "pending"
    )
    assert (await post(intake, callback(intake, payment))).status_code == 200
    await settled(intake, payment["transaction_id"])

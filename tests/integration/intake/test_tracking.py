"""Tracking, the status view fed by processing's events, supplements, withdrawal, payment."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx

from devstack.simulators.payment import create_app as create_simulator
from services.intake.domain.payments import sign_callback
from shared.contracts.cloudevents import CloudEvent, unwrap, wrap
from shared.contracts.events import DocumentRef, DossierProcessed, DossierState
from shared.contracts.topics import (
    DOSSIER_PAID_TOPIC,
    DOSSIER_PROCESSED_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    DOSSIER_SUPPLEMENTED_TOPIC,
    DOSSIER_WITHDRAWN_TOPIC,
)
from shared.runtime.kafka import publish_cloud_event
from tests.intake_samples import PDF, dossier_json, multipart, trademark_files
from tests.kafka_helpers import read_until


async def new_dossier(intake) -> tuple[str, str]:
    response = await intake.client.post(
        "/api/v1/dossiers", **multipart(dossier_json(), trademark_files())
    )
    assert response.status_code == 201, response.text
    return response.json()["dossier_code"], response.json()["tracking_secret"]


async def processing_says(intake, code: str, state: DossierState, action: str, **fields) -> None:
    event = DossierProcessed(
        dossier_code=code,
        occurred_at=datetime.now(UTC),
        procedure_code="1.004940",
        unit_code="SHTT",
        action=action,
        state=state,
        **fields,
    )
    await publish_cloud_event(
        intake.components.context.broker, intake.topic(DOSSIER_PROCESSED_TOPIC), wrap(event, "/t")
    )


async def wait_for_state(intake, code: str, secret: str, state: int) -> dict:
    body: dict = {}
    try:
        async with asyncio.timeout(20):
            while body.get("state") != state:
                await asyncio.sleep(0.1)
                response = await intake.client.get(
                    f"/api/v1/dossiers/{code}", params={"secret": secret}
                )
                body = response.json()
    except TimeoutError:
        raise AssertionError(f"state {state} never reached; last view: {body}") from None
    return body


async def events_of(kafka_bootstrap, intake, topic: str, code: str, expected: int = 1) -> list:
    def mine(records: list) -> list:
        return [r for r in records if r.key == code.encode()]

    records = await read_until(
        kafka_bootstrap, intake.topic(topic), lambda records: len(mine(records)) >= expected
    )
    return [unwrap(CloudEvent.from_kafka(r.value, r.headers)) for r in mine(records)]


async def test_tracking_shows_state_history_and_due_date_from_processing(intake) -> None:
    code, secret = await new_dossier(intake)
    first = (
        await intake.client.get(f"/api/v1/dossiers/{code}", headers={"X-Tracking-Secret": secret})
    ).json()
    assert first["state"] == 1 and first["state_label"] == "Mới nộp trực tuyến, chờ tiếp nhận"

    due = datetime(2026, 12, 18, 16, 59, 59, tzinfo=UTC)
    await processing_says(intake, code, DossierState.RECEIVED, "receive", due_at=due)
    await processing_says(intake, code, DossierState.IN_PROCESSING, "start_processing", due_at=due)
    await processing_says(
        intake, code, DossierState.IN_PROCESSING, "deadline_warning_50", due_at=due
    )
    body = await wait_for_state(intake, code, secret, 4)
    assert datetime.fromisoformat(body["due_at"]) == due
    assert [step["action"] for step in body["history"]] == ["submit", "receive", "start_processing"]

    receipt = await intake.client.get(
        f"/api/v1/dossiers/{code}/receipt.html", params={"secret": secret}
    )
    assert receipt.status_code == 200 and "<svg" in receipt.text and code in receipt.text
    assert "18/12/2026" in receipt.text  # the appointment date, once the unit received it


async def test_wrong_secrets_get_not_found_and_are_throttled(intake) -> None:
    code, secret = await new_dossier(intake)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=intake.client._transport.app, client=("198.51.100.9", 1)),
        base_url="http://intake.test",
    )
    async with client:
        for _ in range(intake.settings.wrong_secrets_allowed):
            wrong = await client.get(f"/api/v1/dossiers/{code}", params={"secret": "guess"})
            assert wrong.status_code == 404
        unknown = await client.get(
            "/api/v1/dossiers/000.00.21.G12-990101-0001", params={"secret": secret}
        )
        assert unknown.status_code == 429  # throttled now, whatever the code
        assert "Retry-After" in unknown.headers
    # Other clients are not affected.
    assert (
        await intake.client.get(f"/api/v1/dossiers/{code}", params={"secret": secret})
    ).status_code == 200


async def test_supplement_when_requested_is_announced(intake, kafka_bootstrap) -> None:
    code, secret = await new_dossier(intake)
    early = await intake.client.post(
        f"/api/v1/dossiers/{code}/supplements",
        params={"secret": secret},
        files=[("to_khai", ("bs.pdf", PDF, "application/pdf"))],
    )
    assert early.status_code == 409
    await processing_says(
        intake,
        code,
        DossierState.SUPPLEMENT_REQUESTED,
        "request_supplement",
        citizen_action="Bổ sung tờ khai có chữ ký",
        requested_documents=["to_khai"],
    )
    body = await wait_for_state(intake, code, secret, 5)
    assert body["requested_documents"] == ["to_khai"] and body["citizen_action"]

    response = await intake.client.post(
        f"/api/v1/dossiers/{code}/supplements",
        params={"secret": secret},
        files=[("to_khai", ("bs.pdf", PDF, "application/pdf"))],
        data={"note": "Đã ký"},
    )
    assert response.status_code == 202, response.text
    again = await intake.client.post(
        f"/api/v1/dossiers/{code}/supplements",
        params={"secret": secret},
        files=[("to_khai", ("bs.pdf", PDF, "application/pdf"))],
    )
    assert again.status_code == 409
    [event] = await events_of(kafka_bootstrap, intake, DOSSIER_SUPPLEMENTED_TOPIC, code)
    assert [d.document_type for d in event.documents] == ["to_khai"] and event.note == "Đã ký"


async def test_withdrawal_is_announced_once(intake, kafka_bootstrap) -> None:
    code, secret = await new_dossier(intake)
    response = await intake.client.post(
        f"/api/v1/dossiers/{code}/withdrawal",
        params={"secret": secret},
        json={"reason": "Nộp nhầm"},
    )
    assert response.status_code == 202
    second = await intake.client.post(
        f"/api/v1/dossiers/{code}/withdrawal", params={"secret": secret}, json={}
    )
    assert second.status_code == 409
    [event] = await events_of(kafka_bootstrap, intake, DOSSIER_WITHDRAWN_TOPIC, code)
    assert event.reason == "Nộp nhầm"


async def test_level4_payment_through_the_simulator_and_callback(intake, kafka_bootstrap) -> None:
    code, secret = await new_dossier(intake)
    await processing_says(intake, code, DossierState.PAYMENT_REQUESTED, "request_payment")
    await wait_for_state(intake, code, secret, 6)

    app = intake.client._transport.app
    to_intake = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://intake.test"
    )
    simulator = create_simulator(
        intake.settings.payment_request_key.encode(),
        intake.settings.payment_callback_key.encode(),
        "http://intake.test/api/v1/payments/callback",
        http_client=to_intake,
    )
    payments = intake.components.service.payments
    original = payments.provider
    from services.intake.adapters.payment_provider import HttpPaymentProvider

    sim_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator), base_url="http://pay.test"
    )
    payments.provider = HttpPaymentProvider(
        "http://pay.test", "BKHCN", intake.settings.payment_request_key, sim_client
    )
    try:
        started = await intake.client.post(
            f"/api/v1/dossiers/{code}/payments", params={"secret": secret}
        )
        assert started.status_code == 201, started.text
        payment = started.json()
        assert payment["amount_vnd"] == 1_000_000
        paid = await sim_client.post(payment["payment_url"].replace("http://pay.test", ""))
        assert paid.json()["callback_status"] == 200, paid.text
        replay = await sim_client.post(
            payment["payment_url"].replace("http://pay.test", "") + "/replay"
        )
        assert replay.json()["callback_status"] == 409
    finally:
        payments.provider = original
        await sim_client.aclose()
        await to_intake.aclose()

    [event] = await events_of(kafka_bootstrap, intake, DOSSIER_PAID_TOPIC, code)
    assert event.amount_vnd == 1_000_000 and event.transaction_id == payment["transaction_id"]


async def test_forged_payment_callbacks_are_refused(intake) -> None:
    body = json.dumps(
        {
            "transaction_id": "x",
            "dossier_code": "000.00.21.G12-260101-0001",
            "amount_vnd": 1,
            "status": "success",
            "paid_at": "2026-01-01T00:00:00Z",
            "provider_reference": "r",
            "timestamp": int(time.time()),
        }
    ).encode()
    now = int(time.time())
    forged = await intake.client.post(
        "/api/v1/payments/callback",
        content=body,
        headers={"X-Signature": sign_callback(body, now, b"not-the-key"), "X-Timestamp": str(now)},
    )
    assert forged.status_code == 401
    stale = await intake.client.post(
        "/api/v1/payments/callback",
        content=body,
        headers={
            "X-Signature": sign_callback(
                body, now - 3600, intake.settings.payment_callback_key.encode()
            ),
            "X-Timestamp": str(now - 3600),
        },
    )
    assert stale.status_code == 401


async def test_a_dossier_written_while_the_broker_is_unreachable_is_published_later(
    intake, kafka_bootstrap
) -> None:
    """Persist, then publish: if publishing fails, the dossier keeps its pending event and the
    relay sends it once it can."""
    relay = intake.components.dossier_relay

    async def broker_down(document):
        raise ConnectionError("broker unreachable")

    original = relay._publish_events
    relay._publish_events = broker_down  # type: ignore[method-assign]
    try:
        code, _ = await new_dossier(intake)
        await asyncio.sleep(0)
        stored = await intake.components.store.dossiers.find_one({"_id": code})
        assert stored["outbox_pending"] is True
    finally:
        relay._publish_events = original  # type: ignore[method-assign]
    await intake.components.store.dossiers.update_one(
        {"_id": code}, {"$set": {"outbox_lease_until": None}}
    )
    relay.poke()
    [event] = await events_of(kafka_bootstrap, intake, DOSSIER_SUBMITTED_TOPIC, code)
    assert event.dossier_code == code


async def test_the_result_of_a_level4_dossier_is_downloadable_once_issued(intake) -> None:
    code, secret = await new_dossier(intake)
    early = await intake.client.get(f"/api/v1/dossiers/{code}/result", params={"secret": secret})
    assert early.status_code == 404

    class ProcessingResults:
        async def fetch(self, storage_id: str) -> bytes:
            assert storage_id == "result-1"
            return PDF

    original = intake.components.service.dossiers.result_documents
    intake.components.service.dossiers.result_documents = ProcessingResults()
    try:
        await processing_says(
            intake,
            code,
            DossierState.PROCESSED,
            "issue_result",
            result_document=DocumentRef(
                document_type="ket_qua",
                file_name='Kết quả "cuối".pdf',
                content_type="application/pdf",
                size_bytes=len(PDF),
                storage_id="result-1",
            ),
        )
        body = await wait_for_state(intake, code, secret, 9)
        assert body["result_available"] is True
        result = await intake.client.get(
            f"/api/v1/dossiers/{code}/result", params={"secret": secret}
        )
    finally:
        intake.components.service.dossiers.result_documents = original
    assert result.status_code == 200 and result.content == PDF
    # `safe_file_name` turns the quotes into `_`; the header carries the rest exactly.
    assert result.headers["content-disposition"] == (
        'attachment; filename="Ket qua _cuoi_.pdf"; '
        "filename*=utf-8''K%E1%BA%BFt%20qu%E1%BA%A3%20_cu%E1%BB%91i_.pdf"
    )

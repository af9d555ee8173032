"""Processing against the real broker and database: cases from events, the officer API, events
out in order, replays and refusals that change nothing, dead letters."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY

from shared.contracts.catalogue import Fee, Procedure, ProcessingTime, TimeUnit
from shared.contracts.cloudevents import CloudEvent, unwrap
from shared.contracts.events import (
    Channel,
    DossierPaid,
    DossierState,
    DossierSupplemented,
    DossierWithdrawn,
    StepAction,
)
from shared.contracts.topics import (
    DOSSIER_PAID_TOPIC,
    DOSSIER_PROCESSED_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    DOSSIER_WITHDRAWN_TOPIC,
    PROCESSING_GROUP,
)
from shared.runtime.auth import DevIssuer
from tests.factories import dossier_code, submitted
from tests.integration.processing.conftest import Service, wait_for
from tests.kafka_helpers import read_records

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def procedure(code: str = "1.004473", unit: str = "G12", **extra: Any) -> Procedure:
    return Procedure(
        code=code,
        name="Cấp giấy chứng nhận",
        unit_code=unit,
        unit_name="Cục",
        field="KH&CN",
        level=4,
        processing_time=ProcessingTime(value=5, unit=TimeUnit.WORKING_DAYS),
        **extra,
    )


def duplicates(service: Service, topic: str) -> float:
    labels = {"topic": topic, "group": PROCESSING_GROUP}
    return REGISTRY.get_sample_value("dvc_duplicate_events_total", labels) or 0.0


async def case_document(service: Service, code: str, **condition: Any) -> Any:
    async def found() -> Any:
        document = await service.processing.store.cases.find_one({"_id": code, **condition})
        return document

    return await wait_for(found, what=f"case {code} {condition}")


async def processed_events(service: Service, code: str, expected: int) -> list[Any]:
    topic = service.topic(DOSSIER_PROCESSED_TOPIC)
    records = await read_records(service.settings.kafka_bootstrap, topic, expected)
    mine = [r for r in records if r.key == code.encode()]
    return [(r.partition, unwrap(CloudEvent.from_kafka(r.value, r.headers))) for r in mine]


BOUNDARY = "dvc-result-boundary"


def multipart_result(quoted_name: str, data: bytes, note: str) -> bytes:
    """A `multipart/form-data` body with a `note` and a PDF `file` named `quoted_name` (already
    escaped for a quoted string)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n{note}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{quoted_name}"\r\nContent-Type: application/pdf\r\n\r\n'
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_a_paper_dossier_becomes_a_case_of_the_catalogue_unit_with_its_due_date(
    service: Service,
) -> None:
    await service.publish(procedure(unit="G15", cutoff_15h=True))
    code = dossier_code(11)
    event = submitted(code).model_copy(
        update={"channel": Channel.COUNTER, "occurred_at": datetime(2019, 4, 26, 10, tzinfo=VN)}
    )
    cloud_event = await service.publish(event)

    document = await case_document(service, code)
    assert document["unit_code"] == "G15"  # routed by processing's catalogue copy
    assert document["state"] == DossierState.RECEIVED
    assert document["due_at"].astimezone(VN).date() == date(2019, 5, 7)  # DOMAIN.md example
    [(_, announced)] = await processed_events(service, code, 1)
    assert announced.action == "receive" and announced.state == DossierState.RECEIVED
    assert announced.due_at.astimezone(VN).date() == date(2019, 5, 7)

    # The same event again (redelivery, replay): nothing changes.
    before = duplicates(service, "submitted")
    await service.republish(event, cloud_event)
    await wait_for(lambda: _async(duplicates(service, "submitted") > before))
    again = await service.processing.store.cases.find_one({"_id": code})
    assert again["version"] == document["version"] and again["history"] == document["history"]


async def test_officer_actions_are_announced_in_order_and_replays_change_nothing(
    service: Service,
) -> None:
    await service.publish(procedure())
    code = dossier_code(12)
    await service.publish(submitted(code).model_copy(update={"occurred_at": datetime.now(UTC)}))
    await case_document(service, code, state=DossierState.SUBMITTED)
    officer = service.token("officer-1", "officer")
    head = service.token("head-1", "unit_head")
    client = service.client
    base = f"/api/v1/cases/{code}"

    received = await client.post(
        f"{base}/receive", headers={**officer, "Idempotency-Key": "k-1"}, json={"note": "Đủ"}
    )
    assert received.status_code == 200, received.text
    assert received.json()["state"] == DossierState.IN_PROCESSING
    assert received.json()["due_at"] is not None
    retried = await client.post(
        f"{base}/receive", headers={**officer, "Idempotency-Key": "k-1"}, json={"note": "Đủ"}
    )
    assert retried.status_code == 200 and retried.headers["Idempotent-Replayed"] == "true"

    asked = await client.post(
        f"{base}/request-supplement",
        headers=officer,
        json={"reason": "Thiếu bản sao", "documents": ["Bản sao CCCD"]},
    )
    assert asked.json()["state"] == DossierState.SUPPLEMENT_REQUESTED
    assert asked.json()["due_at"] is None  # the clock is stopped

    supplement = DossierSupplemented(
        dossier_code=code,
        occurred_at=datetime.now(UTC),
        documents=submitted().documents or [_document()],
    )
    supplement_event = await service.publish(supplement)
    await case_document(service, code, state=DossierState.IN_PROCESSING)

    assert (await client.post(f"{base}/approve", headers=head)).status_code == 200
    # A Vietnamese name with quotes. The form is written by hand: httpx would send `"` as `%22`
    # (WHATWG), which the server keeps as is; RFC 7578 clients may escape it as `\"`.
    issued = await client.post(
        f"{base}/result",
        headers={**officer, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        content=multipart_result(
            'Kết quả \\"cuối\\".pdf', b"%PDF-1.7 result", "Cấp giấy chứng nhận"
        ),
    )
    assert issued.status_code == 200, (
        issued.text,
        await service.processing.store.cases.find_one({"_id": code}, {"outbox": 0}),
    )
    reference = issued.json()["result_document"]
    assert issued.json()["state"] == DossierState.PROCESSED
    # Intake fetches the bytes over HTTP with its own narrow credential: role result_reader,
    # audience dvc-processing, no unit. It reads results and can do nothing else.
    narrow = DevIssuer(service.issuer.directory, audience="dvc-processing").mint(
        "svc-intake", ["result_reader"], None
    )
    intake_credential = {"Authorization": f"Bearer {narrow}"}
    fetched = await client.get(
        f"/api/v1/results/{reference['storage_id']}", headers=intake_credential
    )
    assert fetched.status_code == 200 and fetched.content == b"%PDF-1.7 result"
    assert (await client.get("/api/v1/cases", headers=intake_credential)).status_code == 403
    assert (
        await client.post(f"{base}/return-result", headers=intake_credential)
    ).status_code == 403
    # An ASCII fallback and the exact name (RFC 6266 / 5987).
    assert issued.json()["result_document"]["file_name"] == 'Kết quả "cuối".pdf'
    assert fetched.headers["content-disposition"] == (
        'attachment; filename="Ket qua _cuoi_.pdf"; '
        "filename*=utf-8''K%E1%BA%BFt%20qu%E1%BA%A3%20%22cu%E1%BB%91i%22.pdf"
    )
    returned = await client.post(
        f"{base}/return-result", headers=officer, json={"method": "online"}
    )
    assert returned.json()["state"] == DossierState.RESULT_RETURNED

    events = await processed_events(service, code, 7)
    assert [e.action for _, e in events] == [
        "receive",
        "start_processing",
        "request_supplement",
        "supplement_received",
        "approve",
        "issue_result",
        "return_result",
    ]
    assert len({partition for partition, _ in events}) == 1
    assert events[2][1].requested_documents == ["Bản sao CCCD"]
    assert events[2][1].citizen_action.startswith("Bổ sung hồ sơ")
    assert events[5][1].result_document.storage_id == reference["storage_id"]

    detail = (await client.get(base, headers=officer)).json()
    assert [h["action"] for h in detail["history"]] == [e.action for _, e in events]
    assert len(detail["pauses"]) == 1 and detail["pauses"][0]["ended_at"] is not None

    # Replaying an input event changes nothing.
    version = (await service.processing.store.cases.find_one({"_id": code}))["version"]
    before = duplicates(service, "supplemented")
    await service.republish(supplement, supplement_event)
    await wait_for(lambda: _async(duplicates(service, "supplemented") > before))
    assert (await service.processing.store.cases.find_one({"_id": code}))["version"] == version


async def test_a_result_larger_than_the_default_body_limit_is_issued(service: Service) -> None:
    """Request bodies are limited to `max_body_bytes` (256 KiB) except on the result upload,
    which takes up to `max_result_bytes` (a signed PDF is often larger)."""
    await service.publish(procedure())
    code = dossier_code(15)
    await service.publish(submitted(code).model_copy(update={"occurred_at": datetime.now(UTC)}))
    await case_document(service, code)
    officer = service.token("officer-1", "officer")
    base = f"/api/v1/cases/{code}"
    assert (await service.client.post(f"{base}/receive", headers=officer)).status_code == 200
    head = service.token("head-1", "unit_head")
    assert (await service.client.post(f"{base}/approve", headers=head)).status_code == 200
    data = b"%PDF-1.7 " + b"0" * (2 * service.settings.max_body_bytes)
    issued = await service.client.post(
        f"{base}/result",
        headers={**officer, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        content=multipart_result("ket-qua.pdf", data, "Cấp giấy chứng nhận"),
    )
    assert issued.status_code == 200, issued.text
    assert issued.json()["result_document"]["size_bytes"] == len(data)


async def test_refused_actions_change_nothing(service: Service) -> None:
    await service.publish(procedure())
    code = dossier_code(13)
    await service.publish(submitted(code).model_copy(update={"occurred_at": datetime.now(UTC)}))
    await case_document(service, code)
    officer, head = service.token("o-1", "officer"), service.token("h-1", "unit_head")
    base = f"/api/v1/cases/{code}"
    received = (await service.client.post(f"{base}/receive", headers=officer)).json()
    before = await service.processing.store.cases.find_one({"_id": code})

    other_unit = service.token("o-2", "officer", unit="G15")
    supplement = {"reason": "x", "documents": ["a"]}
    attempts = [
        (f"{base}/request-supplement", other_unit, supplement, 403),  # another unit
        (f"{base}/approve", officer, None, 403),  # a unit head's step
        (f"{base}/return-result", officer, {"method": "post"}, 409),  # not in state 9
        (f"{base}/request-supplement", officer, {"reason": "x", "documents": []}, 422),
        (f"{base}/refuse", head, {}, 422),  # no reason
    ]
    for url, headers, body, status in attempts:
        answer = await service.client.post(url, headers=headers, json=body)
        assert answer.status_code == status, (url, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await service.client.get(base, headers=other_unit)).status_code == 403
    after = await service.processing.store.cases.find_one({"_id": code})
    assert after["version"] == before["version"] and after["state"] == before["state"]

    due = datetime.fromisoformat(received["due_at"]).astimezone(VN).date()
    new_date = service.processing.rules.calendar.add_working_days(due, 3)
    extension = {"reason": "Cần lấy ý kiến", "new_due_date": new_date.isoformat()}
    first = await service.client.post(f"{base}/extend", headers=head, json=extension)
    assert first.status_code == 200, first.text
    assert datetime.fromisoformat(first.json()["due_at"]).astimezone(VN).date() == new_date
    later = service.processing.rules.calendar.add_working_days(new_date, 2).isoformat()
    second = await service.client.post(
        f"{base}/extend", headers=head, json={**extension, "new_due_date": later}
    )
    assert second.status_code == 422 and "gia hạn" in second.json()["detail"]
    assert len((await service.client.get(base, headers=head)).json()["extensions"]) == 1


async def test_unknown_procedures_and_malformed_events_are_dead_lettered(
    service: Service,
) -> None:
    code = dossier_code(14)
    event = submitted(code).model_copy(update={"procedure_code": "9.999999"})
    await service.publish(event)
    raw_topic = service.topic(DOSSIER_SUBMITTED_TOPIC)
    await service.producer.publish(
        b"{not json",
        raw_topic,
        key=b"x",
        headers={
            "ce_specversion": "1.0",
            "ce_id": "bad-1",
            "ce_source": "/t",
            "ce_type": "vn.gov.most.dvc.dossier.submitted.v1",
            "content-type": "application/json",
        },
    )
    dead = await read_records(
        service.settings.kafka_bootstrap, service.dead_letters(DOSSIER_SUBMITTED_TOPIC), 2
    )
    reasons = {
        dict((k, v.decode()) for k, v in r.headers)["dlq_reason"]: dict(
            (k, v.decode()) for k, v in r.headers
        )["dlq_error"]
        for r in dead
    }
    assert set(reasons) == {"permanent", "malformed"}
    assert "9.999999" in reasons["permanent"]
    assert await service.processing.store.cases.count_documents({}) == 0


async def test_the_worklist_puts_online_dossiers_first_then_by_due_date(service: Service) -> None:
    await service.publish(procedure())
    now = datetime.now(UTC)
    paper = dossier_code(21)
    await service.publish(
        submitted(paper).model_copy(update={"channel": Channel.POST, "occurred_at": now})
    )
    online = [dossier_code(22), dossier_code(23)]
    for code in online:
        await service.publish(submitted(code).model_copy(update={"occurred_at": now}))
    for code in (paper, *online):
        await case_document(service, code)
    officer = service.token("o-1", "officer")
    # The later-received online dossier still comes before the paper one (due earlier).
    for code in reversed(online):
        answer = await service.client.post(f"/api/v1/cases/{code}/receive", headers=officer)
        assert answer.status_code == 200

    first = (await service.client.get("/api/v1/cases?limit=2", headers=officer)).json()
    second = (
        await service.client.get(
            f"/api/v1/cases?limit=2&cursor={first['next_cursor']}", headers=officer
        )
    ).json()
    codes = [item["code"] for item in first["items"] + second["items"]]
    assert codes == [*online, paper] or codes == [*reversed(online), paper]
    assert [i["online"] for i in first["items"] + second["items"]] == [True, True, False]
    assert second["next_cursor"] is None
    only_paper = (await service.client.get("/api/v1/cases?state=2", headers=officer)).json()
    assert [item["code"] for item in only_paper["items"]] == [paper]
    assert (await service.client.get("/api/v1/cases?overdue=true", headers=officer)).json()[
        "items"
    ] == []
    other = service.token("o-9", "officer", unit="G15")
    assert (await service.client.get("/api/v1/cases", headers=other)).json()["items"] == []


async def test_administrators_announce_calendar_changes(service: Service) -> None:
    day = date(2031, 3, 3)  # a Monday
    body = {"day": day.isoformat(), "working": False, "reason": "Nghỉ bù theo thông báo"}
    officer = service.token("o-1", "officer")
    assert (
        await service.client.post("/api/v1/calendar/changes", headers=officer, json=body)
    ).status_code == 403
    admin = service.token("admin-1", "admin", unit=None)
    answer = await service.client.post("/api/v1/calendar/changes", headers=admin, json=body)
    assert answer.status_code == 201 and answer.json()["working"] is False
    assert not service.processing.rules.calendar.is_working_day(day)
    listed = (await service.client.get("/api/v1/calendar/changes", headers=officer)).json()
    assert listed == [{"day": day.isoformat(), "working": False, "reason": body["reason"]}]
    assert service.processing.rules.calendar.add_working_days(day - timedelta(days=3), 1) == date(
        2031, 3, 4
    )


async def test_a_fee_first_dossier_gets_its_due_date_when_the_applicant_pays(
    service: Service,
) -> None:
    """State 6 → the citizen pays online → `dvc.dossier.paid.v1` → the clock starts."""
    fee_first = procedure(
        code="1.009001",
        fee_starts_clock=True,
        fees=[Fee(name="Phí thẩm định", amount_vnd=300_000)],
    )
    await service.publish(fee_first)
    code = dossier_code(31)
    await service.publish(
        submitted(code).model_copy(
            update={"procedure_code": fee_first.code, "occurred_at": datetime.now(UTC)}
        )
    )
    await case_document(service, code, state=DossierState.SUBMITTED)
    officer = service.token("officer-1", "officer")
    base = f"/api/v1/cases/{code}"
    received = await service.client.post(f"{base}/receive", headers=officer)
    assert received.status_code == 200 and received.json()["due_at"] is None
    asked = await service.client.post(
        f"{base}/request-payment", headers=officer, json={"amount_vnd": 300_000}
    )
    assert asked.json()["state"] == DossierState.PAYMENT_REQUESTED

    paid = DossierPaid(
        dossier_code=code,
        occurred_at=datetime.now(UTC),
        transaction_id="tx-31",
        amount_vnd=300_000,
        provider="paysim",
    )
    await service.publish(paid)
    document = await case_document(service, code, state=DossierState.IN_PROCESSING)
    assert document["clock_started_at"] is not None and document["due_at"] is not None
    assert document["next_check_at"] is not None
    events = [event for _, event in await processed_events(service, code, 5)]
    assert [event.action for event in events] == [
        "receive",
        "start_processing",
        "request_payment",
        "payment_received",
        "clock_started",
    ]
    assert events[-1].due_at is not None


async def test_the_requested_amount_is_announced_and_a_payment_of_another_is_dead_lettered(
    service: Service,
) -> None:
    """Issue 14 B: `request_payment` carries the amount; `dvc.dossier.paid.v1` must match it."""
    await service.publish(procedure())
    code = dossier_code(33)
    await service.publish(submitted(code).model_copy(update={"occurred_at": datetime.now(UTC)}))
    await case_document(service, code, state=DossierState.SUBMITTED)
    officer = service.token("officer-1", "officer")
    base = f"/api/v1/cases/{code}"
    assert (await service.client.post(f"{base}/receive", headers=officer)).status_code == 200
    asked = await service.client.post(
        f"{base}/request-payment", headers=officer, json={"amount_vnd": 150_000}
    )
    assert asked.json()["state"] == DossierState.PAYMENT_REQUESTED
    events = [event for _, event in await processed_events(service, code, 3)]
    assert [event.action for event in events] == [
        StepAction.RECEIVE,
        StepAction.START_PROCESSING,
        StepAction.REQUEST_PAYMENT,
    ]
    assert [event.amount_vnd for event in events] == [None, None, 150_000]

    mismatches = "dvc_processing_payment_amount_mismatches_total"
    before = REGISTRY.get_sample_value(mismatches) or 0.0
    wrong = DossierPaid(
        dossier_code=code,
        occurred_at=datetime.now(UTC),
        transaction_id="tx-33-1",
        amount_vnd=100_000,
        provider="paysim",
    )
    await service.publish(wrong)
    [dead] = await read_records(
        service.settings.kafka_bootstrap, service.dead_letters(DOSSIER_PAID_TOPIC), 1
    )
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["dlq_reason"] == "permanent"
    assert "differs from the requested 150000 VND" in headers["dlq_error"]
    assert REGISTRY.get_sample_value(mismatches) == before + 1
    document = await service.processing.store.cases.find_one({"_id": code})
    assert document["state"] == DossierState.PAYMENT_REQUESTED and document["paid_at"] is None

    right = wrong.model_copy(update={"transaction_id": "tx-33-2", "amount_vnd": 150_000})
    await service.publish(right)
    await case_document(service, code, state=DossierState.IN_PROCESSING)


async def test_a_due_date_beyond_the_official_calendar_is_counted_and_logged(
    service: Service,
) -> None:
    await service.publish(procedure())
    name = "dvc_processing_due_dates_without_calendar_total"
    before = REGISTRY.get_sample_value(name) or 0.0
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    service_log = logging.getLogger("services.processing.service.cases")
    service_log.addHandler(handler)
    try:
        code = dossier_code(32)
        far = datetime(2101, 3, 1, 10, tzinfo=VN)
        await service.publish(
            submitted(code).model_copy(update={"channel": Channel.COUNTER, "occurred_at": far})
        )
        document = await case_document(service, code)
        assert document["due_at"].year == 2101
        await wait_for(lambda: _async(REGISTRY.get_sample_value(name) == before + 1))
    finally:
        service_log.removeHandler(handler)
    [warning] = [r for r in records if "2101" in r.getMessage()]
    assert warning.levelno == logging.WARNING and code in warning.getMessage()


def _document() -> Any:
    from shared.contracts.events import DocumentRef

    return DocumentRef(
        document_type="cccd",
        file_name="cccd.pdf",
        content_type="application/pdf",
        size_bytes=10,
        storage_id="intake-1",
    )


async def _async(value: Any) -> Any:
    return value


async def test_a_withdrawal_that_overtakes_its_dossier_waits_for_the_case(service: Service) -> None:
    """The withdrawal and the submission travel on different topics: the withdrawal may come
    first. It is parked (put back on its topic, not dead-lettered) until the case exists, then
    applied."""
    await service.publish(procedure())
    code = dossier_code(41)
    topic = service.topic(DOSSIER_WITHDRAWN_TOPIC)
    # The batch consumer labels its metrics with the group's name (the test's suffix is on the
    # consumer group it joins).
    retried = {"topic": topic, "group": PROCESSING_GROUP}

    def retries() -> float:
        return REGISTRY.get_sample_value("dvc_consumer_retries_total", retried) or 0.0

    await service.publish(
        DossierWithdrawn(dossier_code=code, occurred_at=datetime.now(UTC), reason="Nộp nhầm")
    )
    await wait_for(lambda: _async(retries() >= 2), what="the withdrawal tried before its case")
    await service.publish(submitted(code))
    # Applied, not dead-lettered (a dead-lettered withdrawal would leave the case submitted).
    await case_document(service, code, state=DossierState.WITHDRAWAL_REQUESTED)

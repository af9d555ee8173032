"""The notification service end to end: real broker, FerretDB, SMTP server and SMS gateway."""

from __future__ import annotations

import json
import time

from aiokafka import AIOKafkaProducer

from services.notification.adapters.breaker import BreakerState
from services.notification.citizens.domain import sms_text
from services.notification.settings import NotificationSettings
from shared.contracts.cloudevents import CloudEvent, unwrap, wrap
from shared.contracts.events import Contact, DossierNotified, DossierState
from shared.runtime.auth import DevIssuer
from tests.factories import dossier_code, processed, submitted
from tests.integration.notification.conftest import (
    Topics,
    eventually,
    publish,
    running,
    signed_receipt,
)
from tests.integration.notification.servers import SmsGateway, SmtpServer
from tests.kafka_helpers import read_records

PHONE, EMAIL = "0912345678", "a@example.vn"


def notified(records: list) -> list[DossierNotified]:
    return [unwrap(CloudEvent.from_kafka(r.value, r.headers)) for r in records]  # type: ignore[misc]


async def test_receipt_by_sms_then_the_signed_delivery_receipt_marks_it_delivered(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    sms_gateway: SmsGateway,
    smtp_server: SmtpServer,
    kafka_bootstrap: str,
    dev_issuer: DevIssuer,
) -> None:
    code = dossier_code(1)
    event = wrap(submitted(code), "/dvc/intake")
    async with running(settings) as (app, client):
        store = app.state.notification.citizens.store
        await publish(producer, topics.submitted, event)

        async def sms_sent() -> list:
            return sms_gateway.to(PHONE)

        request = (await eventually(sms_sent))[0]
        nid = request.idempotency_key
        assert nid and request.body["reference"] == nid
        assert request.authorization == "Bearer dev-sms-token"
        assert request.body["text"].startswith(f"DVC BKHCN: Ho so {code} da duoc nop luc")
        assert sms_text.is_gsm7(request.body["text"]) and request.body["segments"] == 1

        async def status() -> str:
            document = await store.delivery(nid)
            return document["status"] if document else ""

        await eventually(lambda: _equals(status, "sent"))

        body = json.dumps({"reference": nid, "status": "delivered"}).encode()
        url = "/notifications/sms/receipts"
        forged = await client.post(url, content=body, headers=signed_receipt(body, secret="x"))
        assert forged.status_code == 401
        stale = await client.post(
            url, content=body, headers=signed_receipt(body, at=time.time() - 3600)
        )
        assert stale.status_code == 401 and stale.json()["detail"] == "stale"
        assert await status() == "sent"  # nothing changed by the rejected receipts

        accepted = await client.post(url, content=body, headers=signed_receipt(body))
        assert accepted.json() == {"outcome": "delivered"}
        again = await client.post(url, content=body, headers=signed_receipt(body))
        assert again.json() == {"outcome": "duplicate"}
        assert await status() == "delivered"

        token = dev_issuer.mint("officer-1", ["officer"], "G12")
        answer = await client.get(
            f"/notifications/dossiers/{code}/deliveries",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200
        [view] = answer.json()
        assert view["channel"] == "sms" and view["status"] == "delivered"
        assert view["address"] == "*******678" and view["template"] == "receipt.v1"
        other_unit = dev_issuer.mint("officer-2", ["officer"], "G99")
        forbidden = await client.get(
            f"/notifications/dossiers/{code}/deliveries",
            headers={"Authorization": f"Bearer {other_unit}"},
        )
        assert forbidden.status_code == 403
        anonymous = await client.get(f"/notifications/dossiers/{code}/deliveries")
        assert anonymous.status_code == 401

        records = await read_records(kafka_bootstrap, topics.notified, 1)
    [outcome] = notified(records)
    assert (outcome.channel, outcome.status) == ("sms", "delivered")
    assert outcome.notification_id == nid and outcome.source_event_id == event.id
    assert outcome.body is None  # text only for the inbox
    raw = records[0].value + b"".join(v for _, v in records[0].headers)
    assert PHONE.encode() not in raw and EMAIL.encode() not in raw
    assert smtp_server.messages == []  # the SMS worked: no fallback


async def test_redelivery_and_restart_send_nothing_twice(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    sms_gateway: SmsGateway,
) -> None:
    code = dossier_code(2)
    event = wrap(submitted(code), "/dvc/intake")
    async with running(settings) as (app, _):
        await publish(producer, topics.submitted, event)
        await eventually(lambda: _async(sms_gateway.to(PHONE)))

    async with running(settings) as (app, _):  # a restart, then the same event again
        store = app.state.notification.citizens.store
        await publish(producer, topics.submitted, event)
        marker = wrap(submitted(code), "/dvc/intake")  # a new event, same partition, after it
        await publish(producer, topics.submitted, marker)

        async def both_sent() -> bool:
            documents = await store.deliveries_for(code)
            return len(documents) >= 2 and all(d["status"] == "sent" for d in documents)

        await eventually(both_sent)
        documents = await store.deliveries_for(code)
        assert sorted(d["source_event_id"] for d in documents) == sorted([event.id, marker.id])
        assert len(sms_gateway.to(PHONE)) == 2
        assert len({r.idempotency_key for r in sms_gateway.to(PHONE)}) == 2


async def test_processing_steps_send_their_messages_and_warnings_send_nothing(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    sms_gateway: SmsGateway,
) -> None:
    code = dossier_code(3)
    async with running(settings) as (app, _):
        store = app.state.notification.citizens.store
        await publish(producer, topics.submitted, wrap(submitted(code), "/dvc/intake"))
        await eventually(lambda: _async(len(sms_gateway.to(PHONE)) == 1))

        warning = processed(code, DossierState.IN_PROCESSING, "deadline_warning_50")
        supplement = processed(code, DossierState.SUPPLEMENT_REQUESTED, "request_supplement")
        supplement = supplement.model_copy(
            update={
                "previous_state": DossierState.IN_PROCESSING,
                "requested_documents": ["Bản sao Giấy phép", "Tờ khai"],
            }
        )
        await publish(producer, topics.processed, wrap(warning, "/dvc/processing"))
        await publish(producer, topics.processed, wrap(supplement, "/dvc/processing"))
        texts = await eventually(
            lambda: _async([r.body["text"] for r in sms_gateway.to(PHONE)][1:])
        )
        assert texts == [f"DVC BKHCN: Ho so {code} can bo sung: Ban sao Giay phep; To khai."]
        templates = [d["template"] for d in await store.deliveries_for(code)]
        assert templates == ["receipt.v1", "supplement_requested.v1"]


async def test_gateway_errors_are_retried_then_the_message_falls_back_to_email(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    sms_gateway: SmsGateway,
    smtp_server: SmtpServer,
    kafka_bootstrap: str,
) -> None:
    sms_gateway.mode = "fail"
    code = dossier_code(4)
    async with running(settings) as (app, _):
        store = app.state.notification.citizens.store
        await publish(producer, topics.submitted, wrap(submitted(code), "/dvc/intake"))
        [mail] = await eventually(lambda: _async(smtp_server.to(EMAIL)))
        assert mail["Subject"] == f"Biên nhận hồ sơ {code}"
        text = mail.get_content()
        assert text.startswith("Kính gửi Nguyễn Văn A,") and f"Mã hồ sơ: {code}." in text

        attempts = sms_gateway.to(PHONE)
        assert len(attempts) == settings.delivery_max_attempts  # retried up to the bound
        assert len({r.idempotency_key for r in attempts}) == 1  # the same message each time

        async def both_final() -> list:
            documents = await store.deliveries_for(code)
            return documents if [d["status"] for d in documents][-1:] == ["sent"] else []

        sms, email = await eventually(both_final)  # the SMTP answer is in; now the record
        assert (sms["channel"], sms["status"], sms["attempts"]) == ("sms", "technical-failure", 3)
        assert (email["channel"], email["status"]) == ("email", "sent")
        assert email["fallback_of"] == sms["_id"]

        outcomes = notified(await read_records(kafka_bootstrap, topics.notified, 2))
        assert sorted((o.channel, o.status) for o in outcomes) == [
            ("email", "sent"),
            ("sms", "technical-failure"),
        ]


async def test_a_hanging_gateway_opens_the_breaker_and_slow_answers_close_it_again(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    sms_gateway: SmsGateway,
    smtp_server: SmtpServer,
) -> None:
    sms_gateway.mode = "hang"  # answers after 2 s; the client gives up after 0.5 s
    codes = [dossier_code(10 + i) for i in range(3)]
    async with running(settings) as (app, client):
        breaker = app.state.notification.citizens.channels["sms"].breaker
        for code in codes:
            await publish(producer, topics.submitted, wrap(submitted(code), "/dvc/intake"))
        # Every message still reaches the citizen, by e-mail.
        await eventually(lambda: _async(len(smtp_server.to(EMAIL)) >= 3), within=20)
        assert len(smtp_server.to(EMAIL)) == 3  # one e-mail per message, none twice
        # 3 messages x 3 attempts, but once open the breaker spared the gateway most calls.
        assert len(sms_gateway.requests) < 9
        metrics = (await client.get("/metrics")).text
        assert (
            'dvc_notification_breaker_transitions_total{provider="sms:127.0.0.1",state="open"}'
            in metrics
        )
        assert "dvc_notification_fallbacks_total" in metrics

        sms_gateway.mode = "slow"  # 0.2 s: slow but within the time-out
        await eventually(lambda: _async(breaker.state != BreakerState.OPEN))
        recovered = dossier_code(20)
        await publish(producer, topics.submitted, wrap(submitted(recovered), "/dvc/intake"))
        store = app.state.notification.citizens.store

        async def sent_by_sms() -> bool:
            documents = await store.deliveries_for(recovered)
            return any(d["channel"] == "sms" and d["status"] == "sent" for d in documents)

        await eventually(sent_by_sms)
        assert breaker.state == BreakerState.CLOSED


async def test_a_malformed_event_is_dead_lettered_and_the_next_is_delivered(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    smtp_server: SmtpServer,
    kafka_bootstrap: str,
) -> None:
    code = dossier_code(5)
    async with running(settings):
        await producer.send_and_wait(topics.submitted, b"{not json", key=code.encode())
        valid = submitted(code).model_copy(update={"contact": Contact(email="b@example.vn")})
        await publish(producer, topics.submitted, wrap(valid, "/dvc/intake"))
        await eventually(lambda: _async(smtp_server.to("b@example.vn")))
    [dead] = await read_records(kafka_bootstrap, topics.submitted_dlq, 1)
    assert dead.value == b"{not json"
    assert dict(dead.headers)["dlq_reason"] == b"malformed"


async def test_without_contact_details_the_message_goes_to_the_inbox(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    dev_issuer: DevIssuer,
) -> None:
    code = dossier_code(6)
    counter = submitted(code).model_copy(update={"contact": Contact()})
    async with running(settings) as (_, client):
        await publish(producer, topics.submitted, wrap(counter, "/dvc/intake"))
        [outcome] = notified(await read_records(kafka_bootstrap, topics.notified, 1))
        assert (outcome.channel, outcome.status) == ("inbox", "delivered")
        assert outcome.title == f"Biên nhận hồ sơ {code}"
        assert outcome.body and f"Mã hồ sơ: {code}." in outcome.body

        token = dev_issuer.mint("officer-1", ["officer"], "G12")
        answer = await client.get(
            f"/notifications/dossiers/{code}/inbox", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
        [message] = answer.json()
        assert message["notification_id"] == outcome.notification_id
        assert message["body"] == outcome.body


async def _equals(check, expected) -> bool:  # type: ignore[no-untyped-def]
    return await check() == expected


async def _async(value):  # type: ignore[no-untyped-def]
    return value

"""Webhook parts without I/O: signatures, URL rules, filters, retries, order per dossier."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from services.notification.settings import NotificationSettings
from services.notification.webhooks.adapters.sealing import SecretBox
from services.notification.webhooks.adapters.url_check import check_url
from services.notification.webhooks.dispatcher import _merge
from services.notification.webhooks.domain.queues import DossierQueues, QueuedDelivery
from services.notification.webhooks.domain.signing import (
    InvalidSignature,
    new_secret,
    sign,
    signature_headers,
    verify,
)
from services.notification.webhooks.domain.subscriptions import (
    RETRY_SCHEDULE_SECONDS,
    Filters,
    is_retryable,
    next_attempt_delay,
    retry_window,
    webhook_body,
)
from services.notification.webhooks.domain.urls import (
    UrlRefused,
    UrlRules,
    check_address,
    check_form,
)
from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierState, PublicDossierStatus

NOW = 1_800_000_000
STRICT, LOCAL = UrlRules(), UrlRules.local()  # production's rules; development's local receivers


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # From the Standard Webhooks specification's reference libraries.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_signed_delivery_verifies_and_any_change_is_refused() -> None:
    secret, body = new_secret(), b'{"id":"e1"}'
    headers = signature_headers(secret, "e1", NOW, body)
    verify(secret, headers, body, now=NOW + 10)
    for forged_body, forged_headers, key in [
        (body + b" ", headers, secret),  # body changed
        (body, {**headers, "webhook-id": "e2"}, secret),  # another id
        (body, {**headers, "webhook-timestamp": str(NOW + 1)}, secret),  # another time
        (body, headers, new_secret()),  # another secret
        (body, {k: v for k, v in headers.items() if k != "webhook-signature"}, secret),
    ]:
        with pytest.raises(InvalidSignature):
            verify(key, forged_headers, forged_body, now=NOW)


def test_a_replayed_or_future_request_falls_outside_the_window() -> None:
    secret, body = new_secret(), b"{}"
    headers = signature_headers(secret, "e1", NOW, body)
    verify(secret, headers, body, now=NOW + 300)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, headers, body, now=NOW + 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, headers, body, now=NOW - 301)


def test_any_of_several_signatures_may_match_during_a_secret_rotation() -> None:
    old, new, body = new_secret(), new_secret(), b"{}"
    both = f"{sign(old, 'e1', NOW, body)} {sign(new, 'e1', NOW, body)}"
    headers = {"Webhook-Id": "e1", "Webhook-Timestamp": str(NOW), "Webhook-Signature": both}
    verify(new, headers, body, now=NOW)
    verify(old, headers, body, now=NOW)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.gov.vn/hook", "https"),
        ("ftp://example.gov.vn/hook", "https"),
        ("https:///hook", "no host"),
        ("https://user:secret@example.gov.vn/hook", "credentials"),
        ("https://example.gov.vn/hook#frag", "fragment"),
        ("https://example.gov.vn:99999/hook", "not a valid URL"),
    ],
)
def test_url_form_outside_development(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused, match=reason):
        check_form(url, STRICT)


def test_plain_http_is_allowed_in_development_only() -> None:
    assert check_form("http://127.0.0.1:8080/x", LOCAL) == ("127.0.0.1", 8080)
    assert check_form("https://example.gov.vn/x", STRICT) == ("example.gov.vn", 443)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(UrlRefused, match="non-public"):
        check_address(address, STRICT)
    check_address(address, LOCAL)


def test_public_addresses_pass() -> None:
    check_address("8.8.8.8", STRICT)
    check_address("2001:4860:4860::8888", STRICT)


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(UrlRefused, match="non-public"):
        await check_url("https://localhost/hook", allow_private=False)


def status(
    action: str = "receive", unit: str = "G12", procedure: str = "1.004473"
) -> PublicDossierStatus:
    return PublicDossierStatus(
        dossier_code="000.00.21.G12-261129-0001",
        occurred_at=datetime(2026, 11, 29, 2, 0, tzinfo=UTC),
        procedure_code=procedure,
        unit_code=unit,
        state=DossierState.RECEIVED,
        action=action,
    )


def test_filters_match_on_unit_procedure_and_step_and_empty_means_all() -> None:
    assert Filters().matches(status())
    only = Filters(unit_codes=["G12"], procedure_codes=["1.004473"], event_types=["receive"])
    assert only.matches(status())
    assert not only.matches(status(unit="G13"))
    assert not only.matches(status(procedure="2.000001"))
    assert not only.matches(status(action="submit"))


def test_the_retry_schedule_spans_more_than_a_day_then_gives_up() -> None:
    assert retry_window().total_seconds() > 24 * 3600
    delays = [next_attempt_delay(n) for n in range(1, len(RETRY_SCHEDULE_SECONDS) + 2)]
    assert delays[:-1] == list(RETRY_SCHEDULE_SECONDS) and delays[-1] is None
    assert delays[:-1] == sorted(delays[:-1])  # backs off, never speeds up


def test_which_answers_are_retried() -> None:
    assert all(is_retryable(code) for code in (500, 502, 503, 504, 408, 429))
    assert not any(is_retryable(code) for code in (400, 401, 403, 404, 410, 422))


def test_the_body_is_a_structured_cloudevent_with_the_public_data() -> None:
    event = wrap(status(), "/dvc/notification/public-stream")
    body = json.loads(webhook_body(event))
    assert body["id"] == event.id and body["specversion"] == "1.0"
    assert body["subject"] == "000.00.21.G12-261129-0001"
    assert body["data"]["action"] == "receive" and body["data"]["state"] == 2


def delivery(dossier: str, n: int, partition: int = 0) -> QueuedDelivery:
    return QueuedDelivery(f"{dossier}-{n}", dossier, f"e{n}", b"{}", partition, n)


def test_one_dossier_goes_out_in_order_one_at_a_time() -> None:
    queues = DossierQueues()
    for n in range(3):
        queues.add(delivery("A", n))
    first = queues.take()
    assert first is not None and first.id == "A-0"
    assert queues.take() is None  # A is busy: its next step waits
    queues.done(first)
    second = queues.take()
    assert second is not None and second.id == "A-1"


def test_a_dossier_waiting_for_a_retry_holds_back_only_itself() -> None:
    queues = DossierQueues()
    queues.add(delivery("A", 0))
    queues.add(delivery("A", 1))
    queues.add(delivery("B", 0))
    held = queues.take()
    assert held is not None and held.id == "A-0"  # fails: left busy until released
    other = queues.take()
    assert other is not None and other.id == "B-0"
    assert queues.take() is None
    queues.release("A")
    again = queues.take()
    assert again is not None and again.id == "A-0"  # the same head, before A-1


def test_duplicates_are_ignored_and_lost_partitions_forgotten() -> None:
    queues = DossierQueues()
    assert queues.add(delivery("A", 0, partition=1))
    assert not queues.add(delivery("A", 0, partition=1))
    queues.add(delivery("B", 0, partition=2))
    assert queues.drop_partitions({1}) == 1
    assert "A-0" not in queues and "B-0" in queues and len(queues) == 1


def test_outcomes_of_one_delivery_merge_into_one_write_the_later_winning() -> None:
    retry = {"$set": {"attempts": 1, "next_attempt_at": 1}}
    delivered = {
        "$set": {"attempts": 2, "status": "delivered"},
        "$unset": {"body": "", "next_attempt_at": ""},
    }
    assert _merge(retry, delivered) == {
        "$set": {"attempts": 2, "status": "delivered"},
        "$unset": {"body": "", "next_attempt_at": ""},
    }
    assert _merge(delivered, retry)["$set"]["next_attempt_at"] == 1


def test_signing_secrets_are_sealed_and_keys_rotate() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_before = SecretBox(old_key).seal("whsec_abc")
    assert "whsec_abc" not in sealed_before
    rotated = SecretBox(f"{new_key},{old_key}")  # the new key seals, both open
    assert rotated.open(sealed_before) == "whsec_abc"
    assert SecretBox(new_key).open(rotated.seal("whsec_abc")) == "whsec_abc"
    with pytest.raises(ValueError, match="unknown key"):
        SecretBox(new_key).open(sealed_before)


def test_production_refuses_the_development_sealing_key() -> None:
    production = {
        "environment": "production",
        "jwt_public_key_file": __file__,
        "jwt_issuer": "https://sso.most.gov.vn",
        "sms_gateway_token": "real-token",
        "sms_receipt_secret": "real-secret",
        "sms_gateway_url": "https://sms.most.gov.vn/api/send",
        "smtp_tls": "starttls",
    }
    with pytest.raises(ValueError, match="SEALING_KEYS"):
        NotificationSettings(**production)
    NotificationSettings(**production, webhook_sealing_keys=Fernet.generate_key().decode())

"""Channel order, fallback, retry schedule, receipt signatures."""

from __future__ import annotations

from services.notification.citizens.domain import delivery
from services.notification.citizens.domain.delivery import notification_id
from services.notification.citizens.domain.routing import DEFAULT_ORDER, Hop, next_hop, route
from services.notification.citizens.domain.signature import ReceiptCheck, sign, verify
from services.notification.domain import retry


def test_default_order_is_sms_then_email_then_inbox() -> None:
    hops = route(DEFAULT_ORDER, phone="0912345678", email="a@example.vn")
    assert hops == [Hop("sms", "0912345678"), Hop("email", "a@example.vn"), Hop("inbox", "")]
    assert next_hop(hops, "sms") == Hop("email", "a@example.vn")
    assert next_hop(hops, "email") == Hop("inbox", "")
    assert next_hop(hops, "inbox") is None


def test_channels_without_an_address_are_skipped() -> None:
    hops = route(DEFAULT_ORDER, phone=None, email="a@example.vn")
    assert [h.channel for h in hops] == ["email", "inbox"]
    assert [h.channel for h in route(DEFAULT_ORDER, phone="", email=None)] == ["inbox"]


def test_the_citizens_own_order_is_kept() -> None:
    hops = route(["email", "sms", "email"], phone="0912345678", email="a@example.vn")
    assert [h.channel for h in hops] == ["email", "sms"]
    assert next_hop(hops, "sms") is None  # no inbox in their order: the end


def test_nothing_reachable_still_reaches_the_inbox() -> None:
    assert route(["sms"], phone=None, email=None) == [Hop("inbox", "")]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [retry.backoff(n, base=1, cap=30, rand=lambda a, b: a) for n in range(1, 8)]
    high = [retry.backoff(n, base=1, cap=30, rand=lambda a, b: b) for n in range(1, 8)]
    assert low == [0.5, 1, 2, 4, 8, 15, 15]
    assert high == [1, 2, 4, 8, 16, 30, 30]


def test_final_outcomes_depend_on_the_channel() -> None:
    assert delivery.is_final("sent", "email")  # no receipts for e-mail
    assert not delivery.is_final("sent", "sms")  # waits for the gateway's receipt
    assert delivery.is_final("delivered", "inbox")
    assert delivery.is_final("technical-failure", "sms")


def test_notification_ids_are_stable_per_event_and_channel() -> None:
    assert notification_id("e1", "sms") == notification_id("e1", "sms")
    assert notification_id("e1", "sms") != notification_id("e1", "email")
    assert notification_id("e1", "sms") != notification_id("e2", "sms")


def test_receipt_signatures() -> None:
    secret, body = b"s3cret", b'{"reference":"x","status":"delivered"}'
    good = sign(secret, "1000", body)
    check = dict(secret=secret, body=body, now=1010.0, tolerance=300)
    assert verify(timestamp="1000", signature=good, **check) == ReceiptCheck.OK
    assert verify(timestamp="1000", signature=good.upper(), **check) == ReceiptCheck.OK
    tampered = dict(check, body=body.replace(b"delivered", b"failed"))
    assert verify(timestamp="1000", signature=good, **tampered) == ReceiptCheck.BAD_SIGNATURE
    assert verify(timestamp="1001", signature=good, **check) == ReceiptCheck.BAD_SIGNATURE
    stale = dict(check, now=1000.0 + 301)
    assert verify(timestamp="1000", signature=good, **stale) == ReceiptCheck.STALE
    assert verify(timestamp=None, signature=good, **check) == ReceiptCheck.MISSING
    assert verify(timestamp="soon", signature=good, **check) == ReceiptCheck.BAD_SIGNATURE

"""Webhook hardening (issue 14): IPv6 forms of private addresses, ports, the checked address pinned
for the connection (also over TLS, with the name kept for SNI and the certificate), and a
subscription whose signing secret cannot be opened. Local servers on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from services.notification.adapters.breaker import BreakerState
from services.notification.settings import NotificationSettings
from services.notification.webhooks.adapters.sealing import SecretBox, UnreadableSecret
from services.notification.webhooks.adapters.sender import Attempt, PinnedResolver, WebhookSender
from services.notification.webhooks.adapters.url_check import UrlChecker
from services.notification.webhooks.dispatcher import (
    PAUSED_BY_BREAKER,
    PAUSED_SECRET_UNREADABLE,
    Dispatcher,
)
from services.notification.webhooks.domain.queues import QueuedDelivery
from services.notification.webhooks.domain.signing import new_secret
from services.notification.webhooks.domain.subscriptions import DispatchConfig, SubscriptionStatus
from services.notification.webhooks.domain.urls import (
    UrlRefused,
    UrlRules,
    check_address,
    check_form,
)
from services.notification.webhooks.settings import url_rules

STRICT, LOCAL = UrlRules(), UrlRules.local()
# Public-address rules that still allow plain http on any port: a local receiver can stand for
# the inside service a rebinding name would reach.
STRICT_ADDRESSES_ANY_PORT = UrlRules(plain_http=True, ports=None)
NAME = "hooks.agency.test"
SECRET = new_secret()
CONFIG = DispatchConfig(retry_schedule=(0.05,), timeout=2.0, workers_per_subscription=2)


# ------------------------------------------------------------------ addresses and ports


@pytest.mark.parametrize(
    "address",
    [
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (cloud metadata)
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64: refused whatever it carries
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
    ],
)
def test_ipv6_forms_of_non_public_ipv4_addresses_are_refused(address: str) -> None:
    with pytest.raises(UrlRefused, match="non-public"):
        check_address(address, STRICT)
    check_address(address, LOCAL)


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_ipv6_forms_of_public_ipv4_addresses_pass(address: str) -> None:
    check_address(address, STRICT)  # e.g. NAT64 on an IPv6-only cluster reaching an IPv4 host


def test_only_port_443_in_production_and_also_80_elsewhere() -> None:
    production = UrlRules.for_environment(production=True, allow_private=True)
    elsewhere = UrlRules.for_environment(production=False, allow_private=False)
    assert production == STRICT  # allow_private never holds in production
    assert check_form("https://example.gov.vn/x", production) == ("example.gov.vn", 443)
    assert check_form("https://example.gov.vn:443/x", production) == ("example.gov.vn", 443)
    for url in ("https://example.gov.vn:80/x", "https://example.gov.vn:8443/x"):
        with pytest.raises(UrlRefused, match="port must be 443 "):
            check_form(url, production)
    assert check_form("https://example.gov.vn:80/x", elsewhere) == ("example.gov.vn", 80)
    for url in ("https://example.gov.vn:8080/x", "https://example.gov.vn:22/x"):
        with pytest.raises(UrlRefused, match="port must be 443 or 80"):
            check_form(url, elsewhere)
    with pytest.raises(UrlRefused, match="https"):
        check_form("http://example.gov.vn/x", elsewhere)  # port 80, yet still https only
    assert check_form("http://127.0.0.1:8080/x", LOCAL) == ("127.0.0.1", 8080)


def test_the_settings_choose_the_rules_of_their_environment() -> None:
    test = NotificationSettings(environment="test")
    assert url_rules(test).ports == {443, 80} and not url_rules(test).private_addresses
    local = test.model_copy(update={"webhook_allow_private_urls": True})
    assert url_rules(local) == LOCAL
    assert url_rules(test.model_copy(update={"environment": "production"})).ports == {443}


# ------------------------------------------------------------------ one lookup, pinned


class ScriptedResolver:
    """Answers each lookup of a name from a script (the last answer repeats); counts them."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return answer


async def test_every_resolved_address_is_checked_and_those_are_connected_to() -> None:
    mixed = UrlChecker(STRICT, ScriptedResolver(["8.8.8.8", "10.0.0.1"]))
    with pytest.raises(UrlRefused, match=r"non-public address \(10\.0\.0\.1\)"):
        await mixed.check(f"https://{NAME}/hook")
    with pytest.raises(UrlRefused, match="does not resolve"):
        await UrlChecker(STRICT, ScriptedResolver([])).check(f"https://{NAME}/hook")

    public = UrlChecker(STRICT, ScriptedResolver(["8.8.8.8", "2001:4860:4860::8888"]))
    pinned = await PinnedResolver(public).resolve(NAME, 443)
    assert [(r["host"], r["hostname"], r["family"]) for r in pinned] == [
        ("8.8.8.8", NAME, socket.AF_INET),
        ("2001:4860:4860::8888", NAME, socket.AF_INET6),
    ]
    only_v4 = await PinnedResolver(public).resolve(NAME, 443, socket.AF_INET)
    assert [r["host"] for r in only_v4] == ["8.8.8.8"]


@dataclass
class Receiver:
    """A local HTTP(S) receiver: what reached it, with the TLS server name it was asked for."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    port: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Serving(None) as server:
        yield server


def _self_signed(name: str, directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Serving:
    """A local receiver while in `async with`, over TLS when given a server context."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.receiver = Receiver()

    async def __aenter__(self) -> Receiver:
        receiver = self.receiver

        async def hook(request: web.Request) -> web.Response:
            receiver.calls.append(
                {"host": request.headers.get("Host"), "body": await request.read()}
            )
            return web.Response(status=204)

        if self.tls is not None:

            def remember(_sock: Any, server_name: str | None, _context: Any) -> None:
                receiver.server_names.append(server_name)

            self.tls.sni_callback = remember
        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        receiver.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return receiver

    async def __aexit__(self, *_: object) -> None:
        await self.runner.cleanup()


def delivery(n: int = 1) -> QueuedDelivery:
    return QueuedDelivery(f"d{n}", "A", f"e{n}", b'{"id":"e1"}', 0, n)


async def test_a_name_answering_differently_on_the_next_lookup_reaches_nothing(
    receiver: Receiver,
) -> None:
    # Checked once as public (registration), then the name points at the inside service.
    resolver = ScriptedResolver(["8.8.8.8"], ["127.0.0.1"])
    urls = UrlChecker(STRICT_ADDRESSES_ANY_PORT, resolver)
    url = f"http://{NAME}:{receiver.port}/hook"
    await urls.check(url)
    sender = WebhookSender(CONFIG, urls)
    try:
        attempt = await sender.send(url, SECRET, delivery())
    finally:
        await sender.close()
    assert attempt == Attempt(
        False, None, "refused: the host resolves to a non-public address (127.0.0.1)", True
    )
    assert receiver.calls == [] and resolver.lookups == 2  # the connection's lookup was checked


async def test_an_address_given_as_the_host_is_checked_at_every_attempt(
    receiver: Receiver,
) -> None:
    sender = WebhookSender(CONFIG, UrlChecker(STRICT_ADDRESSES_ANY_PORT))
    try:
        attempt = await sender.send(f"http://127.0.0.1:{receiver.port}/hook", SECRET, delivery())
        refused_port = await WebhookSender(CONFIG, UrlChecker(STRICT)).send(
            "https://8.8.8.8:8443/hook", SECRET, delivery()
        )  # refused before any connection: no client to close
    finally:
        await sender.close()
    assert attempt.error and "non-public" in attempt.error and receiver.calls == []
    assert refused_port.error and "port must be 443" in refused_port.error


async def test_tls_goes_to_the_pinned_address_with_the_name_for_sni_host_and_certificate(
    tmp_path: Path,
) -> None:
    cert, key = _self_signed(NAME, tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    resolver = ScriptedResolver(["127.0.0.1"])
    urls = UrlChecker(UrlRules(private_addresses=True, ports=None), resolver)
    async with Serving(server_tls) as tls_receiver:
        sender = WebhookSender(CONFIG, urls, tls=trusting)
        try:
            url = f"https://{NAME}:{tls_receiver.port}/hook"
            first = await sender.send(url, SECRET, delivery(1))
            second = await sender.send(url, SECRET, delivery(2))
            # Another name pinned to the same address: its certificate does not match the name.
            other = await sender.send(
                f"https://other.agency.test:{tls_receiver.port}/hook", SECRET, delivery(3)
            )
        finally:
            await sender.close()
    assert first.ok and second.ok, (first, second)
    assert [c["host"] for c in tls_receiver.calls] == [f"{NAME}:{tls_receiver.port}"] * 2
    assert tls_receiver.server_names[0] == NAME  # SNI: the name, not the address
    assert resolver.lookups == 2  # one per name: kept for the connection and its reuse
    assert not other.ok and other.retryable and other.error and "certificate" in other.error
    assert len(tls_receiver.calls) == 2


# ------------------------------------------------------------------ unreadable secrets


def test_a_secret_no_key_opens_or_a_damaged_one_is_unreadable() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    for sealed in (SecretBox(Fernet.generate_key().decode()).seal("whsec_a"), "damaged", None):
        with pytest.raises(UnreadableSecret):
            box.open(sealed)


class FakeStore:
    """The part of `WebhookStore` the dispatcher's refresh uses (no pending deliveries)."""

    def __init__(self, *subscriptions: dict[str, Any]) -> None:
        self.subscriptions = {s["_id"]: s for s in subscriptions}
        self.updates: list[tuple[str, dict[str, Any]]] = []

    async def live_subscriptions(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.subscriptions.values()]

    async def update_subscription(self, sub_id: str, fields: dict[str, Any]) -> None:
        self.updates.append((sub_id, fields))
        self.subscriptions[sub_id].update(fields)

    async def write_outcomes(self, updates: Any) -> None:
        pass


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, url: str, secret: str, delivery: QueuedDelivery) -> Attempt:
        self.sent.append((url, secret))
        return Attempt(True, 204, None, retryable=False)

    async def close(self) -> None:
        pass


def subscription(sub_id: str, sealed: str) -> dict[str, Any]:
    return {
        "_id": sub_id,
        "agency_id": "so-khcn-hn",
        "url": f"https://{sub_id}.example/hook",
        "status": SubscriptionStatus.ACTIVE,
        "sealed_secret": sealed,
    }


def paused_gauge(sub_id: str) -> float | None:
    labels = {"subscription": sub_id, "agency": "so-khcn-hn"}
    return REGISTRY.get_sample_value("dvc_webhook_subscription_paused", labels)


async def test_an_unreadable_secret_pauses_only_its_subscription_until_rotated() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    dropped_key = SecretBox(Fernet.generate_key().decode())  # a key no longer configured
    store = FakeStore(
        subscription("good", box.seal("whsec_good")),
        subscription("lost", dropped_key.seal("whsec_lost")),
    )
    sender = FakeSender()
    dispatcher = Dispatcher(store, box, CONFIG, sender)  # type: ignore[arg-type]
    try:
        assert await dispatcher.refresh() == 2  # starts: the unreadable one does not stop it
        good, lost = dispatcher.live["good"], dispatcher.live["lost"]
        assert good.secret == "whsec_good" and lost.secret is None
        await asyncio.sleep(0)  # the status write is spawned
        assert store.subscriptions["lost"]["status"] == SubscriptionStatus.PAUSED
        assert store.subscriptions["lost"]["pause_reason"] == PAUSED_SECRET_UNREADABLE
        assert store.subscriptions["good"]["status"] == SubscriptionStatus.ACTIVE
        assert paused_gauge("lost") == 1

        for live in (good, lost):
            live.spilled = False
            dispatcher._enqueue(live, delivery())
        await asyncio.sleep(0.1)
        assert sender.sent == [("https://good.example/hook", "whsec_good")]  # others deliver

        store.subscriptions["lost"]["sealed_secret"] = box.seal("whsec_rotated")  # rotated
        await dispatcher.refresh()
        await asyncio.sleep(0.1)
        assert sender.sent[-1] == ("https://lost.example/hook", "whsec_rotated")
        assert store.subscriptions["lost"]["status"] == SubscriptionStatus.ACTIVE
        assert paused_gauge("lost") == 0
    finally:
        await dispatcher.close()


async def test_a_subscription_paused_for_its_secret_comes_back_after_a_restart() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    paused = {
        **subscription("back", box.seal("whsec_back")),  # the old key was put back
        "status": SubscriptionStatus.PAUSED,
        "pause_reason": PAUSED_SECRET_UNREADABLE,
    }
    tripped = {**subscription("tripped", box.seal("whsec_t")), "status": "paused"}
    store = FakeStore(paused, tripped)
    dispatcher = Dispatcher(store, box, CONFIG, FakeSender())  # type: ignore[arg-type]
    try:
        await dispatcher.refresh()
        await asyncio.sleep(0)
        assert store.subscriptions["back"]["status"] == SubscriptionStatus.ACTIVE
        assert dispatcher.live["back"].breaker.state == BreakerState.CLOSED
        # Paused by its breaker before the restart: still paused until a probe succeeds.
        assert store.subscriptions["tripped"]["status"] == SubscriptionStatus.PAUSED
        assert dispatcher.live["tripped"].document["pause_reason"] == PAUSED_BY_BREAKER
    finally:
        await dispatcher.close()

"""devstack's mail (SMTP) and SMS gateway simulators as the processes `devstack run` starts: the
notification service's own channels send through them, and what they received is stored in their
folder and listed over HTTP; SIGTERM stops them cleanly and a restart keeps what they hold."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest

from devstack.config import PROJECT_ROOT
from services.notification.citizens.adapters.email import SmtpEmailChannel
from services.notification.citizens.adapters.sms import HttpSmsChannel
from services.notification.citizens.domain.ports import OutgoingMessage, PermanentSendError
from services.notification.citizens.domain.signature import ReceiptCheck, verify
from tests.integration.notification.conftest import eventually
from tests.integration.notification.servers import WebhookReceiver
from tests.integration.test_devstack import free_ports

SENDER = "DVC Bo KH&CN <no-reply@dichvucong.most.gov.vn>"
CODE = "000.00.21.G12-261128-0001"
TOKEN, RECEIPT_SECRET = "sim-token", "sim-receipt-secret"


class Simulator:
    """One simulator process (`python -m devstack.simulators.<name>`) on free ports."""

    def __init__(self, name: str, data: Path, *extra: str, env: dict[str, str] | None = None):
        self.name, self.data, self.extra, self.env = name, data, extra, env or {}
        self.http_port, self.smtp_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log = data.parent / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Simulator:
        argv = [sys.executable, "-m", f"devstack.simulators.{self.name}"]
        argv += ["--port", str(self.http_port), "--data", str(self.data), *self.extra]
        if self.name == "mail":
            argv += ["--smtp-port", str(self.smtp_port)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/health/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise AssertionError(f"{self.name} simulator not ready:\n{self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM; the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return await client.request(method, path, **options)

    async def get(self, path: str) -> Any:
        return (await self.request("GET", path)).json()

    async def messages(self, query: str = "") -> list[dict[str, Any]]:
        return (await self.get(f"/messages{query}"))["messages"]


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(name: str, *extra: str, env: dict[str, str] | None = None) -> Simulator:
        started.append(Simulator(name, tmp_path / name, *extra, env=env).start())
        return started[-1]

    yield start
    for each in started:
        each.stop()


def message(
    address: str, nid: str = "n-1", text: str = "Hồ sơ đã được tiếp nhận."
) -> OutgoingMessage:
    return OutgoingMessage(nid, CODE, address, "Hồ sơ đã được tiếp nhận", text)


async def test_mail_is_stored_as_eml_with_an_index_and_listed(
    simulator: Callable[..., Simulator],
) -> None:
    mail = simulator("mail")
    channel = SmtpEmailChannel(host="127.0.0.1", port=mail.smtp_port, sender=SENDER)
    try:
        assert (await channel.send(message("lan@example.vn"))).status == "sent"
        assert (await channel.send(message("binh@example.vn", "n-2"))).status == "sent"
    finally:
        await channel.close()
    # Straight through aiosmtplib too: two recipients in one envelope, a UTF-8 address.
    raw = b"From: a@example.vn\r\nTo: b@example.vn\r\nSubject: hello\r\n\r\nplain body\r\n"
    await aiosmtplib.send(
        raw,
        sender="a@example.vn",
        recipients=["b@example.vn", "nguyễn@example.vn"],
        hostname="127.0.0.1",
        port=mail.smtp_port,
        mail_options=["SMTPUTF8"],
    )

    listed = await mail.messages()
    assert [m["to"] for m in listed] == [
        ["lan@example.vn"],
        ["binh@example.vn"],
        ["b@example.vn", "nguyễn@example.vn"],
    ]
    [first] = await mail.messages("?to=LAN@example.vn")
    assert first["subject"] == "Hồ sơ đã được tiếp nhận"
    assert first["text"].strip() == "Hồ sơ đã được tiếp nhận."
    assert (first["dossier"], first["notification_id"]) == (CODE, "n-1")
    assert first["mail_from"] == "no-reply@dichvucong.most.gov.vn"
    assert first["message_id"].endswith("@dichvucong.most.gov.vn>")
    assert await mail.messages("?limit=1") == [listed[-1]]
    assert await mail.get(f"/messages/{first['id']}") == first
    assert (await mail.request("GET", "/messages/nope")).status_code == 404

    stored = (mail.data / first["file"]).read_bytes()
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["X-DVC-Notification-Id"] == "n-1"
    raw_answer = await mail.request("GET", f"/messages/{listed[-1]['id']}/raw")
    assert raw_answer.headers["content-type"].startswith("message/rfc822")
    assert b"plain body" in raw_answer.content
    index = [json.loads(line) for line in (mail.data / "index.jsonl").read_text().splitlines()]
    assert [e["id"] for e in index] == [m["id"] for m in listed]
    assert sorted(p.name for p in mail.data.glob("*.eml")) == sorted(m["file"] for m in listed)

    assert mail.stop() == 0
    assert "Application shutdown complete" in mail.log.read_text()
    again = simulator("mail")  # same folder
    assert [m["id"] for m in await again.messages()] == [m["id"] for m in listed]


async def test_mail_headers_in_vietnamese_and_an_international_address_read_back(
    simulator: Callable[..., Simulator],
) -> None:
    mail = simulator("mail")
    sender = "Cổng Dịch vụ công Bộ KH&CN <no-reply@dichvucong.most.gov.vn>"
    channel = SmtpEmailChannel(host="127.0.0.1", port=mail.smtp_port, sender=sender)
    body = "Kính gửi Ông/Bà,\nHồ sơ đã được tiếp nhận.\n" + "Tra cứu: https://dvc.example/t\n" * 20
    try:
        await channel.send(message("lan@example.vn", "n-1", body))  # composed as compat32 bytes
        await channel.send(message("nguyễn@example.vn", "n-2", body))  # EmailMessage, SMTPUTF8
    finally:
        await channel.close()

    listed = await mail.messages()
    assert [m["to"] for m in listed] == [["lan@example.vn"], ["nguyễn@example.vn"]]
    for entry, nid in zip(listed, ("n-1", "n-2"), strict=True):
        assert entry["subject"] == "Hồ sơ đã được tiếp nhận"
        assert entry["from"] == sender  # an encoded, folded header; raw UTF-8 in the second
        assert entry["text"] == body.replace("\n", "\r\n")  # canonical line breaks
        assert entry["mail_from"] == "no-reply@dichvucong.most.gov.vn"
        assert (entry["dossier"], entry["notification_id"]) == (CODE, nid)
        # RFC 6532 allows raw UTF-8 in the headers of the SMTPUTF8 message.
        raw = (mail.data / entry["file"]).read_bytes().decode()
        parsed = email.message_from_string(raw, policy=email.policy.default)
        assert parsed["From"].addresses[0].display_name == "Cổng Dịch vụ công Bộ KH&CN"
        assert parsed["Message-ID"].endswith("@dichvucong.most.gov.vn>")


async def test_sms_through_the_notification_channel_is_stored_once_per_key_and_listed(
    simulator: Callable[..., Simulator],
) -> None:
    sms = simulator("sms", env={"DVC_SMSSIM_TOKEN": TOKEN})
    channel = HttpSmsChannel(url=f"{sms.url}/sms", token=TOKEN)
    wrong_token = HttpSmsChannel(url=f"{sms.url}/sms", token="dev-sms-token")
    try:
        first = await channel.send(message("0912345678", "n-1", "DVC BKHCN: Ho so da nop"))
        resent = await channel.send(message("0912345678", "n-1", "DVC BKHCN: Ho so da nop"))
        other = await channel.send(message("0987654321", "n-2", "Hồ sơ đã có kết quả"))
        with pytest.raises(PermanentSendError, match="401"):
            await wrong_token.send(message("0912345678", "n-3"))
    finally:
        await channel.close()
        await wrong_token.close()
    assert first.provider_reference and resent.provider_reference == first.provider_reference
    assert other.provider_reference != first.provider_reference

    listed = await sms.messages()
    assert [(m["id"], m["to"], m["reference"]) for m in listed] == [
        (first.provider_reference, "0912345678", "n-1"),
        (other.provider_reference, "0987654321", "n-2"),
    ]
    [unicode] = await sms.messages("?to=0987654321")
    assert (unicode["encoding"], unicode["segments"], unicode["idempotency_key"]) == (
        "ucs2",
        1,
        "n-2",
    )
    assert unicode["text"] == "Hồ sơ đã có kết quả" and unicode["receipt"] is None
    single = await sms.get(f"/messages/{first.provider_reference}")
    assert single == listed[0] and single["text"] == "DVC BKHCN: Ho so da nop"
    lines = (sms.data / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [m["id"] for m in listed]

    # The protocol's rules: anything else is refused, and the channel takes it as permanent.
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k"}
    good = {"to": "0912345678", "text": "x", "reference": "r", "encoding": "gsm7", "segments": 1}
    for body, key in [
        ({**good, "priority": "high"}, "k"),
        ({**good, "encoding": "utf8"}, "k"),
        ({**good, "segments": 0}, "k"),
        ({k: v for k, v in good.items() if k != "to"}, "k"),
        (good, ""),
    ]:
        answer = await sms.request(
            "POST", "/sms", json=body, headers={**headers, "Idempotency-Key": key}
        )
        assert answer.status_code == 400 and answer.json()["errors"], body
    assert len(await sms.messages()) == 2

    assert sms.stop() == 0
    again = simulator("sms", env={"DVC_SMSSIM_TOKEN": TOKEN})  # same folder: keys remembered
    channel = HttpSmsChannel(url=f"{again.url}/sms", token=TOKEN)
    try:
        after_restart = await channel.send(message("0912345678", "n-1", "DVC BKHCN: Ho so da nop"))
    finally:
        await channel.close()
    assert after_restart.provider_reference == first.provider_reference
    assert len(await again.messages()) == 2


async def test_sms_delivery_receipts_are_signed_as_notification_checks_them_and_retried(
    simulator: Callable[..., Simulator],
) -> None:
    receiver = WebhookReceiver(fail_first=1, fail_status=503).start()  # the first one is retried
    try:
        sms = simulator(
            "sms",
            "--receipt-url",
            receiver.url,
            "--receipt-delay",
            "0",
            env={"DVC_SMSSIM_RECEIPT_SECRET": RECEIPT_SECRET},
        )
        channel = HttpSmsChannel(url=f"{sms.url}/sms", token="dev-sms-token")
        try:
            ok = await channel.send(message("+84 912 345 678", "n-ok", "ok"))
            bad = await channel.send(message("12345", "n-bad", "no such number"))
            unknown = await channel.send(message("+84912340000", "n-unknown", "unknown"))
        finally:
            await channel.close()

        async def receipts() -> dict[str, Any]:
            found = {m["id"]: m["receipt"] for m in await sms.messages()}
            return found if all(found.values()) else {}

        outcome = await eventually(receipts, within=20)
    finally:
        receiver.stop()
    assert outcome[ok.provider_reference]["status"] == "delivered"
    assert outcome[bad.provider_reference]["status"] == "failed"
    assert outcome[unknown.provider_reference]["status"] == "failed"
    assert {r["answer"] for r in outcome.values()} == {204}

    bodies = {}
    for call in receiver.delivered():
        check = verify(
            RECEIPT_SECRET.encode(),
            timestamp=call.headers["x-timestamp"],
            signature=call.headers["x-signature"],
            body=call.body,
            now=time.time(),
            tolerance=300,
        )
        assert check == ReceiptCheck.OK
        bodies[call.event["reference"]] = call.event
    assert bodies == {
        "n-ok": {"reference": "n-ok", "status": "delivered"},
        "n-bad": {"reference": "n-bad", "status": "failed", "error": "unknown subscriber"},
        "n-unknown": {"reference": "n-unknown", "status": "failed", "error": "unknown subscriber"},
    }
    assert len(receiver.calls) == 4  # one refused with 503, then all three delivered
    lines = (sms.data / "receipts.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(outcome)

"""The portal client against the simulator served on a local port, and the simulator's own
rules."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from devstack.simulators.portal import dossier_errors
from services.notification.portal.adapters.client import PortalClient, PortalError
from services.notification.portal.domain.messages import StepMessage
from tests.integration.notification.servers import PortalServer

CODE = "000.00.21.G12-261129-0001"
DOSSIER = {
    "MaHoSo": CODE,
    "MaTTHC": "1.004473",
    "ChuHoSo": "Nguyễn Văn A",
    "LoaiDoiTuong": 1,
    "NgayNopHoSo": "20261127090000",
    "TrangThaiHoSo": 1,
    "KenhThucHien": 2,
    "DonViXuLy": "G12",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def portal() -> Iterator[PortalServer]:
    server = PortalServer(session_ttl=600, username="u", password="p").start()
    yield server
    server.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[PortalClient]]:
    made: list[PortalClient] = []
    yield made
    for client in made:
        await client.close()


@pytest.fixture
def client_for(clients: list[PortalClient]) -> Callable[..., PortalClient]:
    def make(portal: PortalServer, clock: Clock | None = None, password: str = "p") -> PortalClient:
        client = PortalClient(
            base_url=portal.url,
            username="u",
            password=password,
            session_margin=30,
            clock=clock or Clock(),
        )
        clients.append(client)
        return client

    return make


def a_step(step_id: str = "ev-1") -> StepMessage:
    return StepMessage(
        dossier_code=CODE,
        step_id=step_id,
        officer="officer-7",
        at="20261127100000",
        department="G12",
        content="Tiếp nhận hồ sơ",
        state=2,
    )


async def post_dossier(client: PortalClient, payload: dict) -> None:
    await client._send("/api/dossiers", payload)  # a raw payload, to probe the portal's rules


async def test_one_login_serves_many_calls_until_the_session_nears_its_expiry(
    portal: PortalServer, client_for: Callable[..., PortalClient]
) -> None:
    clock = Clock()
    client = client_for(portal, clock)
    await post_dossier(client, DOSSIER)
    await client.send_step(a_step("ev-1"))
    assert client.logins == 1
    clock.now += 600 - 31  # still outside the 30 s margin
    await client.send_step(a_step("ev-2"))
    assert client.logins == 1
    clock.now += 2  # inside the margin: renewed before the portal would refuse it
    await client.send_step(a_step("ev-3"))
    assert client.logins == 2
    assert list(portal.state.steps[CODE]) == ["ev-1", "ev-2", "ev-3"]


async def test_a_session_dropped_by_the_portal_is_renewed_and_the_call_repeated(
    portal: PortalServer, client_for: Callable[..., PortalClient]
) -> None:
    client = client_for(portal)
    await post_dossier(client, DOSSIER)
    portal.admin("/_admin/sessions/expire")
    await client.send_step(a_step())
    assert client.logins == 2
    assert portal.requests() == [
        ("login", 200),
        ("dossier", 200),
        ("step", 401),
        ("login", 200),
        ("step", 200),
    ]


async def test_failures_are_classified_retryable_or_permanent(
    portal: PortalServer, client_for: Callable[..., PortalClient]
) -> None:
    client = client_for(portal)
    portal.admin("/_admin/faults", {"fail_next": 1, "status": 503})
    with pytest.raises(PortalError) as down:
        await post_dossier(client, DOSSIER)
    assert down.value.retryable and down.value.status == 503

    portal.admin("/_admin/faults", {"fail_next": 1, "status": 429})
    with pytest.raises(PortalError) as throttled:
        await post_dossier(client, DOSSIER)
    assert throttled.value.retryable

    with pytest.raises(PortalError) as refused:
        await post_dossier(client, {**DOSSIER, "TrangThaiHoSo": 11, "NgayNopHoSo": "2026-11-27"})
    assert not refused.value.retryable and refused.value.status == 400
    assert "TrangThaiHoSo" in str(refused.value) and "NgayNopHoSo" in str(refused.value)

    with pytest.raises(PortalError) as orphan:  # a step before its dossier
        await client.send_step(a_step())
    assert not orphan.value.retryable and orphan.value.status == 409


async def test_wrong_credentials_are_reported_and_retried_later(
    portal: PortalServer, client_for: Callable[..., PortalClient]
) -> None:
    client = client_for(portal, password="wrong")
    with pytest.raises(PortalError) as refused:
        await post_dossier(client, DOSSIER)
    assert refused.value.status == 401 and refused.value.retryable
    assert "login" in str(refused.value)


async def test_a_portal_that_does_not_answer_is_a_retryable_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = PortalClient(base_url=f"http://127.0.0.1:{port}", username="u", password="p")
    try:
        with pytest.raises(PortalError) as down:
            await client.send_step(a_step())
        assert down.value.retryable and down.value.status is None
    finally:
        await client.close()


def test_the_simulator_checks_dates_codes_and_cross_field_rules() -> None:
    assert dossier_errors(DOSSIER) == []
    assert dossier_errors({**DOSSIER, "NgayNopHoSo": "20261327090000"}) == [
        "hoSo.NgayNopHoSo: ngày không tồn tại (not a calendar date)"
    ]
    assert any("MaHoSo" in e for e in dossier_errors({**DOSSIER, "MaHoSo": "G12-1"}))
    assert any("KenhThucHien" in e for e in dossier_errors({**DOSSIER, "KenhThucHien": 4}))
    assert any("unknown field" in e for e in dossier_errors({**DOSSIER, "CCCD": "0012"}))
    missing = {k: v for k, v in DOSSIER.items() if k != "ChuHoSo"}
    assert dossier_errors(missing) == ["hoSo.ChuHoSo: bắt buộc (required)"]
    returned = {**DOSSIER, "TrangThaiHoSo": 10, "NgayTiepNhan": "20261127100000"}
    assert len(dossier_errors(returned)) == 2  # state 10 needs both the finish and return dates
    early = {**DOSSIER, "TrangThaiHoSo": 2, "NgayTiepNhan": "20261127080000"}
    assert dossier_errors(early) == [
        "NgayTiepNhan: không được trước ngày nộp (received before submitted)"
    ]

"""The payment port's signing, the HTTP adapter and the local simulator (over ASGI, no sockets)."""

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request

from devstack.simulators.payment import create_app as create_simulator
from services.intake.adapters.memory import RecordingPaymentProvider
from services.intake.adapters.payment_provider import HttpPaymentProvider
from services.intake.domain.payments import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackRejected,
    PaymentCallback,
    PaymentRequest,
    callback_id,
    checksum,
    checksum_matches,
    parse_timestamp_header,
    payment_order,
    sign_callback,
    verify_callback,
)
from services.intake.domain.ports import PaymentProviderError

REQUEST_KEY = b"test-request-key"
CALLBACK_KEY = b"test-callback-key"
NOW = 1_767_600_000  # 2026-01-05 08:00 UTC


def payment_request(**changes: object) -> PaymentRequest:
    values: dict[str, object] = {
        "transaction_id": "TX-000.00.21.G12-260105-0042-1",
        "dossier_code": "000.00.21.G12-260105-0042",
        "procedure_code": "1.005802",
        "amount_vnd": 280000,
        "description": "Phí thẩm định hồ sơ 000.00.21.G12-260105-0042",
        "payer_name": "Nguyễn Thị Bình",
        "return_url": "https://dichvucong.most.gov.vn/tra-cuu/000.00.21.G12-260105-0042",
        "created_at": datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
    }
    return PaymentRequest(**(values | changes))


def callback_body(**changes: object) -> bytes:
    values: dict[str, object] = {
        "transaction_id": "TX-000.00.21.G12-260105-0042-1",
        "dossier_code": "000.00.21.G12-260105-0042",
        "amount_vnd": 280000,
        "status": "success",
        "paid_at": "2026-01-05T08:00:00Z",
        "provider_reference": "SIM123",
        "timestamp": NOW,
    }
    return PaymentCallback.model_validate(values | changes).model_dump_json().encode()


# --- checksum ---


def test_the_checksum_is_stable_hex_and_depends_on_the_key() -> None:
    first = checksum(payment_request(), REQUEST_KEY)
    assert first == checksum(payment_request(), REQUEST_KEY)
    assert len(first) == 64 and int(first, 16) >= 0
    assert checksum(payment_request(), b"another-key") != first


@pytest.mark.parametrize(
    "change",
    [
        {"amount_vnd": 280001},
        {"dossier_code": "000.00.21.G12-260105-0043"},
        {"payer_name": "Nguyễn Thị Bính"},
        {"return_url": "https://evil.example/"},
        {"created_at": datetime(2026, 1, 5, 8, 0, 1, tzinfo=UTC)},
    ],
)
def test_the_checksum_covers_every_bill_field(change: dict[str, object]) -> None:
    assert checksum(payment_request(**change), REQUEST_KEY) != checksum(
        payment_request(), REQUEST_KEY
    )


def test_content_cannot_move_between_fields() -> None:
    one = payment_request(description="a|b", payer_name="c")
    other = payment_request(description="a", payer_name="b|c")
    assert checksum(one, REQUEST_KEY) != checksum(other, REQUEST_KEY)


def test_the_checksum_does_not_depend_on_the_time_zone_of_created_at() -> None:
    in_hanoi = datetime.fromisoformat("2026-01-05T15:00:00+07:00")
    assert checksum(payment_request(created_at=in_hanoi), REQUEST_KEY) == checksum(
        payment_request(), REQUEST_KEY
    )


def test_checksum_matches_accepts_the_right_one_only() -> None:
    request = payment_request()
    good = checksum(request, REQUEST_KEY)
    assert checksum_matches(request, good.upper(), REQUEST_KEY)
    near_miss = good[:-1] + ("1" if good[-1] == "0" else "0")
    assert not checksum_matches(request, near_miss, REQUEST_KEY)
    assert not checksum_matches(request, "", REQUEST_KEY)
    assert not checksum_matches(request, "ữ" * 64, REQUEST_KEY)


# --- callback verification ---


def test_an_authentic_fresh_callback_is_accepted() -> None:
    body = callback_body()
    signature = sign_callback(body, NOW, CALLBACK_KEY)
    callback = verify_callback(body, signature, NOW, CALLBACK_KEY, now=NOW + 10)
    assert callback.status == "success"
    assert callback.amount_vnd == 280000


def rejection(body: bytes, signature: str, timestamp: int, *, now: int = NOW) -> str:
    with pytest.raises(CallbackRejected) as caught:
        verify_callback(body, signature, timestamp, CALLBACK_KEY, now=now)
    return caught.value.reason


def test_a_tampered_body_is_rejected() -> None:
    signature = sign_callback(callback_body(), NOW, CALLBACK_KEY)
    assert rejection(callback_body(amount_vnd=1), signature, NOW) == "bad_signature"


def test_a_callback_signed_with_another_key_is_rejected() -> None:
    body = callback_body()
    assert rejection(body, sign_callback(body, NOW, REQUEST_KEY), NOW) == "bad_signature"


def test_a_redated_callback_is_rejected() -> None:
    body = callback_body()
    signature = sign_callback(body, NOW, CALLBACK_KEY)
    assert rejection(body, signature, NOW + 1, now=NOW + 1) == "bad_signature"


def test_a_stale_callback_is_rejected() -> None:
    body = callback_body(timestamp=NOW - 301)
    signature = sign_callback(body, NOW - 301, CALLBACK_KEY)
    assert rejection(body, signature, NOW - 301) == "stale_timestamp"
    # Just inside the window it is still good.
    body = callback_body(timestamp=NOW - 300)
    verify_callback(
        body, sign_callback(body, NOW - 300, CALLBACK_KEY), NOW - 300, CALLBACK_KEY, now=NOW
    )


def test_a_callback_from_the_future_is_rejected() -> None:
    body = callback_body(timestamp=NOW + 301)
    signature = sign_callback(body, NOW + 301, CALLBACK_KEY)
    assert rejection(body, signature, NOW + 301) == "future_timestamp"


def test_a_signed_but_invalid_body_is_rejected() -> None:
    body = b'{"transaction_id": "TX-1", "status": "maybe"}'
    assert rejection(body, sign_callback(body, NOW, CALLBACK_KEY), NOW) == "invalid_body"
    body = b"not json"
    assert rejection(body, sign_callback(body, NOW, CALLBACK_KEY), NOW) == "invalid_body"


def test_a_body_timestamp_different_from_the_header_is_rejected() -> None:
    body = callback_body(timestamp=NOW - 100)
    assert rejection(body, sign_callback(body, NOW, CALLBACK_KEY), NOW) == "timestamp_mismatch"


def test_a_success_without_paid_at_is_invalid() -> None:
    body = callback_body().replace(b'"paid_at":"2026-01-05T08:00:00Z"', b'"paid_at":null')
    assert rejection(body, sign_callback(body, NOW, CALLBACK_KEY), NOW) == "invalid_body"


@pytest.mark.parametrize("header", [None, "", "abc", "-5", "１２"])
def test_a_missing_or_malformed_timestamp_header_is_rejected(header: str | None) -> None:
    with pytest.raises(CallbackRejected) as caught:
        parse_timestamp_header(header)
    assert caught.value.reason == "missing_timestamp"


def test_the_callback_id_ignores_the_delivery_time() -> None:
    first = PaymentCallback.model_validate_json(callback_body())
    redelivered = PaymentCallback.model_validate_json(callback_body(timestamp=NOW + 60))
    failed = PaymentCallback.model_validate_json(callback_body(status="failed", paid_at=None))
    assert callback_id(first) == callback_id(redelivered)
    assert callback_id(first) != callback_id(failed)


# --- the HTTP adapter and the simulator ---


class CallbackReceiver:
    """A stand-in for intake's callback endpoint: verifies like intake will, records, answers."""

    def __init__(self) -> None:
        self.accepted: list[PaymentCallback] = []
        self.rejected: list[str] = []
        self.seen: set[str] = set()
        self.app = FastAPI()
        self.app.post("/payments/callback")(self.receive)

    async def receive(self, request: Request) -> dict[str, str]:
        try:
            timestamp = parse_timestamp_header(request.headers.get(TIMESTAMP_HEADER))
            callback = verify_callback(
                await request.body(),
                request.headers.get(SIGNATURE_HEADER, ""),
                timestamp,
                CALLBACK_KEY,
                now=timestamp,  # the simulator's clock is fixed in these tests
            )
        except CallbackRejected as exc:
            self.rejected.append(exc.reason)
            return {"result": "rejected", "reason": exc.reason}
        if callback_id(callback) in self.seen:
            self.rejected.append("replay")
            return {"result": "rejected", "reason": "replay"}
        self.seen.add(callback_id(callback))
        self.accepted.append(callback)
        return {"result": "ok"}


@pytest.fixture
def receiver() -> CallbackReceiver:
    return CallbackReceiver()


@pytest.fixture
async def simulator(receiver: CallbackReceiver):
    to_intake = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=receiver.app), base_url="http://intake"
    )
    app = create_simulator(
        REQUEST_KEY,
        CALLBACK_KEY,
        "http://intake/payments/callback",
        http_client=to_intake,
        clock=lambda: NOW,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://paysim")
    async with to_intake, client:
        yield client


async def test_the_simulator_refuses_a_bad_checksum(simulator: httpx.AsyncClient) -> None:
    order = payment_order(payment_request(), "BKHCN", b"wrong-key")
    response = await simulator.post("/transactions", json=order.model_dump(mode="json"))
    assert response.status_code == 400
    assert "checksum" in response.text


async def test_the_simulator_refuses_an_altered_amount(simulator: httpx.AsyncClient) -> None:
    body = payment_order(payment_request(), "BKHCN", REQUEST_KEY).model_dump(mode="json")
    body["amount_vnd"] = 1000
    response = await simulator.post("/transactions", json=body)
    assert response.status_code == 400


async def test_pay_through_the_adapter_and_receive_a_verifiable_callback(
    simulator: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    provider = HttpPaymentProvider("http://paysim/", "BKHCN", REQUEST_KEY, simulator)
    payment_url = await provider.create_payment(payment_request())
    assert payment_url == "http://paysim/pay/TX-000.00.21.G12-260105-0042-1"

    paid = await simulator.get(payment_url)
    assert paid.status_code == 200
    assert paid.json() == {"callback_status": 200, "callback_response": {"result": "ok"}}
    (callback,) = receiver.accepted
    assert callback.transaction_id == "TX-000.00.21.G12-260105-0042-1"
    assert callback.dossier_code == "000.00.21.G12-260105-0042"
    assert (callback.amount_vnd, callback.status) == (280000, "success")
    assert callback.paid_at == datetime.fromtimestamp(NOW, UTC)


async def test_a_replayed_callback_reaches_intake_and_is_dropped_by_its_id(
    simulator: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    provider = HttpPaymentProvider("http://paysim", "BKHCN", REQUEST_KEY, simulator)
    await simulator.post(await provider.create_payment(payment_request()))
    replayed = await simulator.post("/pay/TX-000.00.21.G12-260105-0042-1/replay")
    assert replayed.json()["callback_response"] == {"result": "rejected", "reason": "replay"}
    assert len(receiver.accepted) == 1
    again = await simulator.post("/pay/TX-000.00.21.G12-260105-0042-1")
    assert again.status_code == 409


async def test_a_failed_payment_can_be_retried(
    simulator: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    provider = HttpPaymentProvider("http://paysim", "BKHCN", REQUEST_KEY, simulator)
    url = await provider.create_payment(payment_request())
    await simulator.post(url, params={"outcome": "failed"})
    await simulator.post(url)
    assert [callback.status for callback in receiver.accepted] == ["failed", "success"]


async def test_registering_the_same_transaction_twice_is_idempotent(
    simulator: httpx.AsyncClient,
) -> None:
    provider = HttpPaymentProvider("http://paysim", "BKHCN", REQUEST_KEY, simulator)
    assert await provider.create_payment(payment_request()) == await provider.create_payment(
        payment_request()
    )
    with pytest.raises(PaymentProviderError, match="409"):
        await provider.create_payment(payment_request(amount_vnd=1))


async def test_paying_an_unknown_transaction_is_404(simulator: httpx.AsyncClient) -> None:
    assert (await simulator.get("/pay/NOPE")).status_code == 404


async def test_the_adapter_reports_a_refusal_and_a_malformed_answer() -> None:
    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/refuse/transactions":
            return httpx.Response(503, text="maintenance")
        return httpx.Response(200, json={"unexpected": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(platform)) as client:
        refused = HttpPaymentProvider("http://p/refuse", "BKHCN", REQUEST_KEY, client)
        with pytest.raises(PaymentProviderError, match="503"):
            await refused.create_payment(payment_request())
        odd = HttpPaymentProvider("http://p/odd", "BKHCN", REQUEST_KEY, client)
        with pytest.raises(PaymentProviderError, match="payment_url"):
            await odd.create_payment(payment_request())


async def test_the_recording_fake_satisfies_the_port() -> None:
    fake = RecordingPaymentProvider()
    url = await fake.create_payment(payment_request())
    assert url.endswith("/pay/TX-000.00.21.G12-260105-0042-1")
    assert fake.requests == [payment_request()]

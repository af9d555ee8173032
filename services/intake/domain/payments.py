"""Payments in the style of the national payment platform (DOMAIN.md §6): messages and signing.

A payment is a transaction with amount and bill info (dossier, procedure, payer) sent with a
checksum (HMAC-SHA256 under the request key); the platform answers with the URL where the citizen
pays, and later posts a callback signed with a second key (headers `X-Signature`, `X-Timestamp`).

The message models and signing are pure; the port is `services.intake.domain.ports.PaymentProvider`
and its HTTP adapter `services.intake.adapters.payment_provider.HttpPaymentProvider`.
Replay protection is split: `verify_callback` rejects forged, altered and stale callbacks; a
fresh, authentic callback delivered twice is the caller's to drop, by `callback_id` or by the
transaction's state in storage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.contracts.events import DossierCode

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"

TransactionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class PaymentRequest(BaseModel):
    """A transaction to pay one dossier's fees."""

    model_config = ConfigDict(frozen=True)

    transaction_id: TransactionId
    dossier_code: DossierCode
    procedure_code: str = Field(min_length=1, max_length=64)
    amount_vnd: int = Field(gt=0)
    description: str = Field(max_length=255)
    payer_name: str = Field(min_length=1, max_length=300)
    return_url: str = Field(min_length=1, max_length=2000)
    created_at: AwareDatetime


class PaymentOrder(PaymentRequest):
    """What is posted to the platform's `/transactions`: the request, the merchant, the checksum."""

    merchant_code: str = Field(min_length=1, max_length=64)
    checksum: str


def platform_time(moment: AwareDatetime) -> str:
    """`yyyyMMddHHmmss` in Asia/Ho_Chi_Minh, the platform's date format."""
    return moment.astimezone(VIETNAM).strftime("%Y%m%d%H%M%S")


def canonical_request(request: PaymentRequest) -> bytes:
    """The signed bytes: the fields in a fixed order as a compact JSON array of strings.

    A JSON array rather than `a|b|c` so that no field value (a payer name with `|`) can shift
    content from one field into another.
    """
    values = [
        request.transaction_id,
        request.dossier_code,
        request.procedure_code,
        str(request.amount_vnd),
        request.description,
        request.payer_name,
        request.return_url,
        platform_time(request.created_at),
    ]
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()


def checksum(request: PaymentRequest, key: bytes) -> str:
    """HMAC-SHA256 of `canonical_request(request)` under the request key, lower-case hex."""
    return hmac.new(key, canonical_request(request), hashlib.sha256).hexdigest()


def checksum_matches(request: PaymentRequest, given: str, key: bytes) -> bool:
    """Whether `given` is the request's checksum (constant-time)."""
    return hmac.compare_digest(checksum(request, key).encode(), given.strip().lower().encode())


def payment_order(request: PaymentRequest, merchant_code: str, key: bytes) -> PaymentOrder:
    return PaymentOrder(
        **request.model_dump(), merchant_code=merchant_code, checksum=checksum(request, key)
    )


# --- Callbacks ---------------------------------------------------------------------------------


class PaymentCallback(BaseModel):
    """The platform's report of a transaction's outcome (the signed JSON body)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    transaction_id: TransactionId
    dossier_code: DossierCode
    amount_vnd: int = Field(gt=0)
    status: Literal["success", "failed"]
    paid_at: AwareDatetime | None = None
    provider_reference: str = Field(min_length=1, max_length=128)
    timestamp: int = Field(description="Unix seconds; must equal the X-Timestamp header")

    @model_validator(mode="after")
    def _success_has_paid_at(self) -> PaymentCallback:
        if self.status == "success" and self.paid_at is None:
            raise ValueError("a successful payment needs paid_at")
        return self


class CallbackRejected(ValueError):
    """A callback that must not be acted on. `reason`: bad_signature, missing_timestamp,
    stale_timestamp, future_timestamp, invalid_body, timestamp_mismatch."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _signed_bytes(body: bytes, timestamp: int) -> bytes:
    # The timestamp is signed with the body, so an old callback cannot be re-dated.
    return str(timestamp).encode() + b"." + body


def sign_callback(body: bytes, timestamp: int, key: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<body>` under the callback key, lower-case hex."""
    return hmac.new(key, _signed_bytes(body, timestamp), hashlib.sha256).hexdigest()


def parse_timestamp_header(value: str | None) -> int:
    """The `X-Timestamp` header as an int, or `CallbackRejected("missing_timestamp")`."""
    if value is None or not value.strip().isascii() or not value.strip().isdigit():
        raise CallbackRejected("missing_timestamp", "X-Timestamp must be Unix seconds")
    return int(value.strip())


def verify_callback(
    body: bytes,
    signature: str,
    timestamp: int,
    key: bytes,
    *,
    now: int,
    tolerance_seconds: int = 300,
) -> PaymentCallback:
    """The callback, if authentic and fresh; `CallbackRejected` otherwise.

    The signature is checked first (constant time), so nothing about an unauthenticated body is
    revealed; then the timestamp against `now` ± `tolerance_seconds`; then the body.
    """
    expected = sign_callback(body, timestamp, key)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise CallbackRejected("bad_signature", "the signature does not match the body")
    if timestamp < now - tolerance_seconds:
        raise CallbackRejected("stale_timestamp", f"signed {now - timestamp} s ago")
    if timestamp > now + tolerance_seconds:
        raise CallbackRejected("future_timestamp", f"signed {timestamp - now} s in the future")
    try:
        callback = PaymentCallback.model_validate_json(body)
    except ValidationError as exc:
        raise CallbackRejected("invalid_body", str(exc.errors()[0]["msg"])) from None
    if callback.timestamp != timestamp:
        raise CallbackRejected("timestamp_mismatch", "body timestamp differs from X-Timestamp")
    return callback


def callback_id(callback: PaymentCallback) -> str:
    """A key to deduplicate deliveries of the same outcome (a redelivery with a new timestamp
    has the same id)."""
    return f"{callback.transaction_id}:{callback.status}:{callback.provider_reference}"

"""Signed delivery receipts: HMAC-SHA256 over `<timestamp>.<raw body>` with a shared secret.

The gateway sends `X-Timestamp` (Unix seconds) and `X-Signature` (hex digest). A timestamp outside
the tolerance is refused, so a captured receipt cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum


class ReceiptCheck(StrEnum):
    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    BAD_SIGNATURE = "bad_signature"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: float,
) -> ReceiptCheck:
    if not timestamp or not signature:
        return ReceiptCheck.MISSING
    try:
        sent_at = int(timestamp)
    except ValueError:
        return ReceiptCheck.BAD_SIGNATURE
    if abs(now - sent_at) > tolerance:
        return ReceiptCheck.STALE
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip().lower()):
        return ReceiptCheck.BAD_SIGNATURE
    return ReceiptCheck.OK

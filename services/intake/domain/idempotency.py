"""Idempotency-Key records that keep no secret at rest and do not live forever.

A retried submission must get the first response back, tracking secret included (a citizen who
double-clicked must still see it). The response is therefore kept (in the dossier it stored), but
sealed with a key derived from the Idempotency-Key, which only the client holds: the record's
`_id` is the key's digest, so the database alone can neither read the secret nor link a record
to its key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

# How long a retry with the same key gets the first response; then the key may be used anew.
IDEMPOTENCY_TTL = timedelta(days=1)
# An unfinished record this old is a request that crashed mid-way: the key is free again.
IDEMPOTENCY_STUCK_AFTER = timedelta(minutes=5)

_ID_CONTEXT = b"dvc-intake/idempotency-record-id/v1:"
_SEAL_CONTEXT = b"dvc-intake/idempotency-seal/v1:"


def idempotency_record_id(key: str) -> str:
    """The record's `_id`: a digest of the key, never the key."""
    return hashlib.sha256(_ID_CONTEXT + key.encode()).hexdigest()


def expiry_day(created_at: datetime) -> str:
    """The day (ISO) the record expires on, the clean-up's equality key."""
    return (created_at + IDEMPOTENCY_TTL).date().isoformat()


def idempotency_answer_id(record_id: str, reservation: str) -> str:
    """The id of the answer to one reservation of a record, kept in the dossier the request
    stored (earlier releases: the `_id` of a document of its own). A record taken over after it
    lapsed has a new reservation, so an old answer never applies."""
    return f"{record_id}:{reservation}"


def idempotency_record_lapsed(created_at: datetime, now: datetime, *, answered: bool) -> bool:
    """True for an expired record, or for one never answered long after it began."""
    age = now - created_at
    if age >= IDEMPOTENCY_TTL:
        return True
    return not answered and age >= IDEMPOTENCY_STUCK_AFTER


class SealedResponse:
    """A JSON response sealed (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived from the
    Idempotency-Key (SHA-256 with a context distinct from the record id's)."""

    @staticmethod
    def _fernet(key: str) -> Fernet:
        digest = hashlib.sha256(_SEAL_CONTEXT + key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))

    @classmethod
    def seal(cls, key: str, body: Any) -> str:
        return cls._fernet(key).encrypt(json.dumps(body).encode()).decode()

    @classmethod
    def open(cls, key: str, sealed: str) -> Any:
        try:
            return json.loads(cls._fernet(key).decrypt(sealed.encode()))
        except InvalidToken as exc:  # cannot happen with the right key: the id is its digest
            raise ValueError("the stored response does not open with this key") from exc

"""Dossier codes, Circular 01/2018 art. 19: `<receiving agency id>-YYMMDD-NNNN`.

`YYMMDD` is the receipt date in Viet Nam's time zone and `NNNN` the sequence of that day for that
agency, starting at 0001. The sequence itself comes from an atomic counter in the store.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_DAILY_SEQUENCE = 9999


def receipt_day(received_at: datetime) -> str:
    """`YYMMDD` of the receipt, in Asia/Ho_Chi_Minh."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return received_at.astimezone(VIETNAM).strftime("%y%m%d")


def sequence_key(agency_id: str, received_at: datetime) -> str:
    """The counter a code's sequence is drawn from: one per agency and day."""
    return f"{agency_id}-{receipt_day(received_at)}"


def format_code(agency_id: str, received_at: datetime, sequence: int) -> str:
    if not 1 <= sequence <= MAX_DAILY_SEQUENCE:
        raise ValueError(f"daily sequence {sequence} is outside 1..{MAX_DAILY_SEQUENCE}")
    return f"{sequence_key(agency_id, received_at)}-{sequence:04d}"


def seconds_to_next_day(now: datetime) -> int:
    """Whole seconds from `now` until the next day begins in Asia/Ho_Chi_Minh (at least 1)."""
    local = now.astimezone(VIETNAM)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return max(1, int((midnight - local).total_seconds() + 0.999))

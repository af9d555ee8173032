"""Quarters in Viet Nam time (Asia/Ho_Chi_Minh, UTC+7, no daylight saving)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def quarter_of(moment: datetime) -> str:
    """`YYYY-Qn` of an aware instant, as the calendar in Viet Nam reads it."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    local = moment.astimezone(VN)
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


def quarter_label(year: int, quarter: int) -> str:
    if not 1 <= quarter <= 4:
        raise ValueError("quarter must be 1..4")
    return f"{year}-Q{quarter}"


def quarters_between(start: date, end: date) -> list[str]:
    """Every quarter touched by the date range [start, end], in order (a range rolls up into
    whole quarters: counters are kept per quarter)."""
    if end < start:
        raise ValueError("the end date precedes the start date")
    first = start.year * 4 + (start.month - 1) // 3
    last = end.year * 4 + (end.month - 1) // 3
    return [quarter_label(n // 4, n % 4 + 1) for n in range(first, last + 1)]

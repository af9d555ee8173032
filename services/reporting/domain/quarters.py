"""Quarters in Viet Nam time (Asia/Ho_Chi_Minh, UTC+7, no daylight saving)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.reporting.domain.errors import InvalidPeriod

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


def report_quarters(
    year: int | None, quarter: int | None, start: date | None, end: date | None
) -> list[str]:
    """The quarters a report covers: `year` and `quarter`, or the date range `start`..`end`
    (at most ten years) rolled into the quarters it touches."""
    if year is not None and quarter is not None and start is None and end is None:
        if not 1 <= quarter <= 4:
            raise InvalidPeriod("quarter must be 1..4")
        return [quarter_label(year, quarter)]
    if start is not None and end is not None and year is None and quarter is None:
        if end < start or (end - start).days > 366 * 10:
            raise InvalidPeriod("from..to must span ≤ 10 years")
        return quarters_between(start, end)
    raise InvalidPeriod("Give either year and quarter, or from and to (dates).")

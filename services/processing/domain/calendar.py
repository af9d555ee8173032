"""Viet Nam's working calendar for legal deadlines (DOMAIN.md §4, R2).

A working day is Monday–Friday or a Government make-up day (e.g. Sat 5 Jan and Sat 4 May 2019),
and not a public holiday or a substituted day off. The official layer comes from the `holidays`
package (country VN): Labour Code holidays including the lunar ones (Tết, Hùng Kings), observed
days ("nghỉ bù") and the Government's swapped days, whose make-up working weekend days the
package exposes as `weekend_workdays`. An administrator-maintained list of announced changes
(`CalendarChange`) is layered on top; for one date the later change wins. The package only knows
the swaps it has been taught (as of holidays 0.109: 2010, 2012–2015, 2018–2019, 2024–2026), so
the administrator list is how a newly announced swap is entered before the package catches up.
Outside the years the package covers at all (1901–2100 for VN in holidays 0.109) it knows no
holiday, so every weekday would count as a working day: `has_official_calendar` tells such years
apart, and the workflow reports due dates that fall in them (`due_years_without_calendar`).

Lookups are cached per year (module-wide for the official layer) and working days are kept as a
sorted list of ordinals, so adding N working days is a binary search rather than a walk.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import holidays

COUNTRY = "VN"
_WEEKEND = frozenset({5, 6})  # Saturday, Sunday
# Working days are materialised this many years ahead of a request at a time.
_YEARS_PER_EXTENSION = 2


@dataclass(frozen=True)
class OfficialYear:
    """The official calendar of one year: days off (holiday name) and make-up working days."""

    days_off: dict[date, str]
    make_up_working_days: frozenset[date]


@functools.cache
def official_year(year: int) -> OfficialYear:
    """Public holidays, substituted days off and make-up working days falling in `year`.

    The neighbouring years are populated too: a swap can straddle New Year (the day off on
    Mon 31 Dec 2018 was made up on Sat 5 Jan 2019) and the package files it under one year.
    """
    table = holidays.country_holidays(COUNTRY, years=(year - 1, year, year + 1), language="vi")
    days_off = {day: str(name) for day, name in table.items() if day.year == year}
    make_up = frozenset(day for day in table.weekend_workdays if day.year == year)
    return OfficialYear(days_off=days_off, make_up_working_days=make_up)


@dataclass(frozen=True)
class CalendarChange:
    """An announced change entered by an administrator: `day` becomes a day off or a working day."""

    day: date
    working: bool
    reason: str = ""


class WorkingCalendar:
    """Viet Nam working days: Mon–Fri, plus the Government's make-up Saturdays, minus public
    holidays (incl. lunar: Tết 5 days, Hùng Kings) and substituted days off — from the `holidays`
    package (country VN) — with an administrator-maintained list of announced changes layered on
    top (extra days off, extra working days, each with a reason; later entries win).

    `extra_days_off` and `extra_working_days` are the short form; `changes` is the ordered form
    with reasons, applied after them. A date in both short lists is ambiguous and refused.
    """

    def __init__(
        self,
        extra_days_off: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
        *,
        changes: Sequence[CalendarChange] = (),
    ) -> None:
        days_off = set(extra_days_off)
        working = set(extra_working_days)
        if clash := days_off & working:
            listed = ", ".join(sorted(day.isoformat() for day in clash))
            raise ValueError(f"dates both extra days off and extra working days: {listed}")
        self._overrides: dict[date, CalendarChange] = {}
        for day in days_off:
            self._overrides[day] = CalendarChange(day, working=False)
        for day in working:
            self._overrides[day] = CalendarChange(day, working=True)
        for change in changes:  # later entries win
            self._overrides[change.day] = change
        self._ordinals: list[int] = []  # working days in [_first_year, _last_year], sorted
        self._first_year = 0
        self._last_year = -1

    # -- single days ---------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        change = self._overrides.get(day)
        if change is not None:
            return change.working
        official = official_year(day.year)
        if day in official.days_off:
            return False
        return day.weekday() not in _WEEKEND or day in official.make_up_working_days

    def reason(self, day: date) -> str | None:
        """Why `day` is not an ordinary weekday/weekend day (holiday name, announced change)."""
        change = self._overrides.get(day)
        if change is not None:
            return change.reason or ("ngày làm việc bổ sung" if change.working else "ngày nghỉ")
        official = official_year(day.year)
        if day in official.days_off:
            return official.days_off[day]
        if day in official.make_up_working_days:
            return "ngày làm bù"
        return None

    def has_official_calendar(self, year: int) -> bool:
        """True when the official layer knows `year`'s public holidays (every covered year has
        some, 1 January first); False beyond the package's range, where only the administrators'
        changes and weekends would make a day off."""
        return bool(official_year(year).days_off)

    # -- counting ------------------------------------------------------------------------------

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        return self.add_working_days(day, 1)

    def add_working_days(self, day: date, n: int) -> date:
        """R1+R2: the n-th working day after `day` (`day` itself not counted); n=0 gives `day`."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return day
        self._cover(day.year, day.year + 1)
        ordinal = day.toordinal()
        index = bisect.bisect_right(self._ordinals, ordinal) + n - 1
        while index >= len(self._ordinals):
            self._cover(day.year, self._last_year + _YEARS_PER_EXTENSION)
            index = bisect.bisect_right(self._ordinals, ordinal) + n - 1
        return date.fromordinal(self._ordinals[index])

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end] — so `add_working_days(s, n)` is n after `s`.

        Negative when `end` is before `start`.
        """
        if end < start:
            return -self.working_days_between(end, start)
        self._cover(start.year, end.year)
        return bisect.bisect_right(self._ordinals, end.toordinal()) - bisect.bisect_right(
            self._ordinals, start.toordinal()
        )

    def _cover(self, first_year: int, last_year: int) -> None:
        """Make sure the sorted working-day list spans the given years."""
        if self._first_year <= first_year and last_year <= self._last_year:
            return
        if self._last_year >= self._first_year:  # already holds a span: only grow it
            first_year = min(first_year, self._first_year)
            last_year = max(last_year, self._last_year)
        day = date(first_year, 1, 1)
        end = date(last_year, 12, 31)
        ordinals = []
        while day <= end:
            if self.is_working_day(day):
                ordinals.append(day.toordinal())
            day += timedelta(days=1)
        self._ordinals = ordinals
        self._first_year, self._last_year = first_year, last_year

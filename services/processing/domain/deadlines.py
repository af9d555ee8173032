"""The deadline engine: legal due dates of a dossier (DOMAIN.md §4, rules R1–R8). Pure, no I/O.

Typical use by the workflow::

    t0 = clock_start(received_at, online=..., cutoff_15h=procedure.cutoff_15h, calendar=c, policy=p)
    due = due_at(t0, procedure.processing_time, calendar=c, policy=p, pauses=case.pauses)
    late = is_overdue(now, due)

Decisions (every rule that can change is a `DeadlinePolicy` field, not a constant):

- All datetimes must be timezone-aware (a naive one raises `DeadlineError`: with MongoDB, open
  the client with `tz_aware=True`). Results are aware, in `policy.timezone`; days are local days.
- R1/R2 working days: the due day is the N-th working day after t0's local date.
  R3 calendar days / months: t0's date + N days / N months (31 Jan + 1 month = 28/29 Feb), moved to
  the next working day if that is not one. A fractional number of days or months is rounded up.
- R4: a day-based deadline ends at the end of its due day — 23:59:59.999999 local, or at
  `office_closes` with `deadline_ends_at="end_of_office_hours"`. Working hours are counted in
  office time (`office_opens`–`office_closes`, on working days) from t0, and the due instant is
  the moment the hours run out (R4 does not stretch it to the end of the day).
- R5: a paper dossier (counter or post) of a procedure with the cut-off, received strictly after
  `policy.cutoff`, is treated as received at the next working day's opening (so, by R1, counting
  starts the working day after that). A paper dossier recorded on a non-working day, of any
  procedure and at any hour, is treated as received at the next working day's opening too.
  R6 [check, on by default]: an online dossier received on a non-working day or after closing is
  treated as received at the next working day's opening; before opening on a working day, at that
  day's opening. The cut-off and closing instants themselves are still "in time".
- R7 pauses (clock stopped while a supplement is awaited). A pause still open (`ended_at` None)
  means the due date is unknown: `due_at` raises `DeadlineError`; test first with `is_paused`.
  ``restart`` (current rule): counting starts from zero at the end of the last pause, exactly as
  if t0 were that end (R1 applies to it). ``resume`` (older practice): the paused time is added —
  for working days, the due day is the N-th working day after t0's date that is not paused, even
  partly (each working day touched by a pause adds one day); calendar days and months likewise add
  each calendar day touched by a pause; working hours add the paused office time exactly. Only
  pause time after t0 counts; overlapping pauses count once. `counting_start` gives the effective
  start (for `threshold_times`).
- Extensions (Form 04): at most `policy.max_extensions` (1); recorded on or before the local day
  that is `policy.extension_notice_days` (1) calendar day(s) before the due day; the new due date
  must be later and fall on a working day. `end_of_day(date, policy)` builds the new deadline.
  The extended date is a promise to the citizen and never moves earlier: when a supplement later
  stops the clock, `keep_extension` gives the due date in force — under ``restart`` the later of
  the freshly counted date and the promised one; under ``resume`` the promised date moved later by
  one working day per working day touched by a pause that began after the extension (as the legal
  time is), or the resumed legal date if that is later.
- Score: 2 if finished on a local day before the due day, 1 if on the due day and not after the
  deadline, 0 if after it.
- R8 is the caller's: store the original due date and every re-set one (extension, restart) with
  when and why, and judge lateness (`is_overdue`, `score`) against the one in force. The functions
  here take the due date as an argument and never re-derive it, so that stays easy; recompute
  with `due_at` only when pauses or the rule change, and keep the result as a new entry.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from services.processing.domain.calendar import WorkingCalendar
from shared.contracts.catalogue import ProcessingTime, TimeUnit

END_OF_DAY = time(23, 59, 59, 999999)
_ONE_MICROSECOND = timedelta(microseconds=1)


class DeadlineError(ValueError):
    """A deadline rule is broken; the message is Vietnamese first, English in brackets."""


@dataclass(frozen=True)
class DeadlinePolicy:
    """Every deadline rule that can change, as configuration."""

    timezone: str = "Asia/Ho_Chi_Minh"
    office_opens: time = time(7, 30)
    office_closes: time = time(17, 0)
    cutoff: time = time(15, 0)  # R5
    deadline_ends_at: Literal["end_of_day", "end_of_office_hours"] = "end_of_day"  # R4
    supplement_clock: Literal["restart", "resume"] = "restart"  # R7
    online_after_hours_counts_next_working_day: bool = True  # R6 [check]
    max_extensions: int = 1  # Form 04
    extension_notice_days: int = 1  # calendar days before the due day

    def __post_init__(self) -> None:
        if not self.office_opens < self.office_closes:
            raise ValueError("office_opens must be before office_closes")
        if self.deadline_ends_at not in ("end_of_day", "end_of_office_hours"):
            raise ValueError(f"unknown deadline_ends_at {self.deadline_ends_at!r}")
        if self.supplement_clock not in ("restart", "resume"):
            raise ValueError(f"unknown supplement_clock {self.supplement_clock!r}")
        if self.max_extensions < 0 or self.extension_notice_days < 0:
            raise ValueError("max_extensions and extension_notice_days must be >= 0")
        _zone(self.timezone)  # fails early on an unknown zone


@dataclass(frozen=True)
class Pause:
    """Clock stopped while a supplement is awaited (R7)."""

    started_at: datetime
    ended_at: datetime | None
    reason: str


# -- helpers ------------------------------------------------------------------------------------


@functools.cache
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def _local(moment: datetime, policy: DeadlinePolicy, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DeadlineError(
            f"Thời điểm '{what}' thiếu múi giờ ({what} must be a timezone-aware datetime)"
        )
    return moment.astimezone(_zone(policy.timezone))


def _at(day: date, moment: time, policy: DeadlinePolicy) -> datetime:
    return datetime.combine(day, moment, tzinfo=_zone(policy.timezone))


def end_of_day(day: date, policy: DeadlinePolicy) -> datetime:
    """R4: the instant a deadline falling on `day` ends."""
    if policy.deadline_ends_at == "end_of_office_hours":
        return _at(day, policy.office_closes, policy)
    return _at(day, END_OF_DAY, policy)


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return date(year, month, min(day.day, last_day))


# -- R5/R6: when counting starts ------------------------------------------------------------------


def clock_start(
    received_at: datetime,
    *,
    online: bool,
    cutoff_15h: bool,
    calendar: WorkingCalendar,
    policy: DeadlinePolicy,
) -> datetime:
    """t0: the moment counting starts from, never before `received_at` (R5, R6)."""
    local = _local(received_at, policy, "received_at")
    day, clock = local.date(), local.time()
    if online:
        if policy.online_after_hours_counts_next_working_day:
            if not calendar.is_working_day(day) or clock > policy.office_closes:
                return _at(calendar.next_working_day(day), policy.office_opens, policy)
            if clock < policy.office_opens:
                return _at(day, policy.office_opens, policy)
        return local
    if not calendar.is_working_day(day) or (cutoff_15h and clock > policy.cutoff):
        return _at(calendar.next_working_day(day), policy.office_opens, policy)
    return local


# -- R7: pauses -----------------------------------------------------------------------------------


def is_paused(pauses: Sequence[Pause]) -> bool:
    """True while a supplement is awaited (a pause without an end): the due date is unknown."""
    return any(pause.ended_at is None for pause in pauses)


def _closed_pauses(
    pauses: Sequence[Pause], policy: DeadlinePolicy
) -> list[tuple[datetime, datetime]]:
    """Local (start, end) intervals, sorted and merged; refuses open or reversed pauses."""
    intervals = []
    for pause in pauses:
        if pause.ended_at is None:
            raise DeadlineError(
                "Hồ sơ đang tạm dừng chờ bổ sung, chưa xác định được hạn xử lý "
                "(the clock is paused awaiting a supplement: the due date is unknown)"
            )
        start = _local(pause.started_at, policy, "started_at")
        end = _local(pause.ended_at, policy, "ended_at")
        if end < start:
            raise DeadlineError(
                "Thời điểm kết thúc tạm dừng trước thời điểm bắt đầu "
                "(a pause ends before it starts)"
            )
        intervals.append((start, end))
    intervals.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def counting_start(t0: datetime, pauses: Sequence[Pause], policy: DeadlinePolicy) -> datetime:
    """The effective start of counting: t0, or under ``restart`` the end of the last pause."""
    start = _local(t0, policy, "t0")
    intervals = _closed_pauses(pauses, policy)
    if policy.supplement_clock == "restart" and intervals:
        start = max(start, intervals[-1][1])
    return start


def _touched_days(intervals: Sequence[tuple[datetime, datetime]], after: date) -> list[date]:
    """Local days after `after` that some interval covers, even partly (end instant exclusive)."""
    days: set[date] = set()
    for start, end in intervals:
        if end <= start:
            continue
        day, last = start.date(), (end - _ONE_MICROSECOND).date()
        while day <= last:
            if day > after:
                days.add(day)
            day += timedelta(days=1)
    return sorted(days)


# -- R1–R4, R7: the due date ----------------------------------------------------------------------


def due_at(
    t0: datetime,
    processing_time: ProcessingTime,
    *,
    calendar: WorkingCalendar,
    policy: DeadlinePolicy,
    pauses: Sequence[Pause] = (),
) -> datetime:
    """The deadline in force for a dossier whose clock started at t0 (see the module docstring).

    Raises `DeadlineError` while a pause is open (`is_paused`).
    """
    start = _local(t0, policy, "t0")
    intervals = _closed_pauses(pauses, policy)
    paused: list[tuple[datetime, datetime]] = []
    if intervals and policy.supplement_clock == "restart":
        start = max(start, intervals[-1][1])
    elif intervals:
        paused = [(max(s, start), e) for s, e in intervals if e > start]

    unit = processing_time.unit
    if unit == TimeUnit.WORKING_HOURS:
        amount = timedelta(hours=processing_time.value)
        return _working_hours_due(start, amount, paused, calendar, policy)

    n = math.ceil(processing_time.value)
    first = start.date()
    if unit == TimeUnit.WORKING_DAYS:
        paused_days = [d for d in _touched_days(paused, first) if calendar.is_working_day(d)]
        due_day = _fixed_point(lambda k: calendar.add_working_days(first, n + k), paused_days)
    else:
        raw = _add_months(first, n) if unit == TimeUnit.MONTHS else first + timedelta(days=n)
        paused_days = _touched_days(paused, first)
        due_day = _fixed_point(lambda k: raw + timedelta(days=k), paused_days)
        if not calendar.is_working_day(due_day):  # R3
            due_day = calendar.next_working_day(due_day)
    return end_of_day(due_day, policy)


def _fixed_point(due_for: Callable[[int], date], paused_days: list[date]) -> date:
    """Extend by one day per paused day up to the due day, until no new paused day is reached."""
    extra = 0
    while True:
        due_day = due_for(extra)
        reached = bisect.bisect_right(paused_days, due_day)
        if reached == extra:
            return due_day
        extra = reached


def _working_hours_due(
    start: datetime,
    amount: timedelta,
    paused: Sequence[tuple[datetime, datetime]],
    calendar: WorkingCalendar,
    policy: DeadlinePolicy,
) -> datetime:
    extra = timedelta(0)
    while True:
        due = add_office_time(start, amount + extra, calendar=calendar, policy=policy)
        reached = sum(
            (
                office_time_between(s, min(e, due), calendar=calendar, policy=policy)
                for s, e in paused
                if s < due
            ),
            timedelta(0),
        )
        if reached == extra:
            return due
        extra = reached


def add_office_time(
    start: datetime, amount: timedelta, *, calendar: WorkingCalendar, policy: DeadlinePolicy
) -> datetime:
    """The instant `amount` of office time (working days, opening to closing) after `start`."""
    cursor = _local(start, policy, "start")
    while True:
        day = cursor.date()
        if not calendar.is_working_day(day) or cursor.time() >= policy.office_closes:
            day = calendar.next_working_day(day)
            cursor = _at(day, policy.office_opens, policy)
        elif cursor.time() < policy.office_opens:
            cursor = _at(day, policy.office_opens, policy)
        available = _at(day, policy.office_closes, policy) - cursor
        if amount <= available:
            return cursor + amount
        amount -= available
        cursor = _at(calendar.next_working_day(day), policy.office_opens, policy)


def office_time_between(
    start: datetime, end: datetime, *, calendar: WorkingCalendar, policy: DeadlinePolicy
) -> timedelta:
    """Office time (working days, opening to closing) within [start, end]."""
    start = _local(start, policy, "start")
    end = _local(end, policy, "end")
    total = timedelta(0)
    day = start.date()
    while day <= end.date():
        if calendar.is_working_day(day):
            opens = max(start, _at(day, policy.office_opens, policy))
            closes = min(end, _at(day, policy.office_closes, policy))
            if closes > opens:
                total += closes - opens
        day += timedelta(days=1)
    return total


# -- extensions, scoring, warnings ---------------------------------------------------------------


def check_extension(
    *,
    current_due: datetime,
    new_due: datetime,
    recorded_at: datetime,
    extensions_so_far: int,
    calendar: WorkingCalendar,
    policy: DeadlinePolicy,
) -> None:
    """Form 04 (apology and new appointment date): raises `DeadlineError` unless allowed."""
    current = _local(current_due, policy, "current_due")
    new = _local(new_due, policy, "new_due")
    recorded = _local(recorded_at, policy, "recorded_at")
    if extensions_so_far >= policy.max_extensions:
        raise DeadlineError(
            f"Hồ sơ chỉ được gia hạn {policy.max_extensions} lần "
            f"(only {policy.max_extensions} extension(s) allowed)"
        )
    latest_day = current.date() - timedelta(days=policy.extension_notice_days)
    if recorded.date() > latest_day:
        raise DeadlineError(
            f"Gia hạn phải được ghi nhận ít nhất {policy.extension_notice_days} ngày trước hạn, "
            f"chậm nhất ngày {latest_day:%d/%m/%Y} (extension must be recorded "
            f"≥ {policy.extension_notice_days} day(s) before the due date)"
        )
    if new <= current:
        raise DeadlineError(
            "Ngày hẹn trả mới phải sau ngày hẹn hiện tại "
            "(the new due date must be later than the current one)"
        )
    if not calendar.is_working_day(new.date()):
        raise DeadlineError(
            f"Ngày hẹn trả mới {new.date():%d/%m/%Y} không phải ngày làm việc "
            "(the new due date must be a working day)"
        )


def keep_extension(
    legal_due: datetime,
    *,
    extended_due: datetime,
    extended_at: datetime,
    pauses: Sequence[Pause],
    calendar: WorkingCalendar,
    policy: DeadlinePolicy,
) -> datetime:
    """The due date in force after a supplement, for a dossier extended (Form 04) before it.

    `legal_due` is `due_at` with every pause; `extended_due` the date the extension promised,
    recorded at `extended_at`. Never earlier than the promise (see the module docstring).
    """
    promised = _local(extended_due, policy, "extended_due")
    legal = _local(legal_due, policy, "legal_due")
    if policy.supplement_clock == "resume":
        recorded = _local(extended_at, policy, "extended_at")
        later = [pause for pause in pauses if pause.started_at >= recorded]
        touched = _touched_days(_closed_pauses(later, policy), recorded.date())
        paused_days = [day for day in touched if calendar.is_working_day(day)]
        promised_day = promised.date()
        due_day = _fixed_point(lambda k: calendar.add_working_days(promised_day, k), paused_days)
        if due_day != promised_day:
            promised = end_of_day(due_day, policy)
    return max(legal, promised)


def score(finished_at: datetime, due: datetime, policy: DeadlinePolicy) -> int:
    """2 = ahead of time (a day before the due day), 1 = on the due day in time, 0 = late."""
    finished = _local(finished_at, policy, "finished_at")
    deadline = _local(due, policy, "due")
    if finished > deadline:
        return 0
    return 2 if finished.date() < deadline.date() else 1


def is_overdue(now: datetime, due: datetime) -> bool:
    """Past the deadline (the caller also checks the state is not 8, 9 or 10)."""
    for moment, what in ((now, "now"), (due, "due")):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise DeadlineError(
                f"Thời điểm '{what}' thiếu múi giờ ({what} must be a timezone-aware datetime)"
            )
    return now > due


def threshold_times(
    t0: datetime,
    due: datetime,
    fractions: Sequence[float],
    *,
    calendar: WorkingCalendar | None = None,
    policy: DeadlinePolicy | None = None,
) -> list[tuple[float, datetime]]:
    """When each fraction (0 < f ≤ 1) of the legal time has elapsed, in the order given.

    Without a calendar: linear in wall-clock time between t0 and due. With `calendar` and `policy`:
    proportional to office time, so nights, weekends and holidays do not use up the allowance.
    A fraction of 1 is the due instant itself. Pass `counting_start(...)` as t0 under ``restart``.
    """
    if (calendar is None) != (policy is None):
        raise ValueError("pass both calendar and policy, or neither")
    for moment, what in ((t0, "t0"), (due, "due")):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise DeadlineError(
                f"Thời điểm '{what}' thiếu múi giờ ({what} must be a timezone-aware datetime)"
            )
    if due < t0:
        raise DeadlineError("Hạn xử lý trước thời điểm bắt đầu tính (due is before t0)")
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction {fraction} must be in (0, 1]")
    if calendar is None or policy is None:
        return [(f, due if f == 1 else t0 + (due - t0) * f) for f in fractions]
    total = office_time_between(t0, due, calendar=calendar, policy=policy)
    result = []
    for fraction in fractions:
        if fraction == 1 or total == timedelta(0):
            result.append((fraction, due))
        else:
            moment = add_office_time(t0, total * fraction, calendar=calendar, policy=policy)
            result.append((fraction, min(moment, _local(due, policy, "due"))))
    return result

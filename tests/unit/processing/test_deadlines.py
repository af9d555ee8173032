"""The deadline engine: R1–R8 of DOMAIN.md §4, extensions, score and warning thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.deadlines import (
    DeadlineError,
    DeadlinePolicy,
    Pause,
    check_extension,
    clock_start,
    counting_start,
    due_at,
    end_of_day,
    is_overdue,
    is_paused,
    keep_extension,
    score,
    threshold_times,
)
from shared.contracts.catalogue import ProcessingTime, TimeUnit

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = WorkingCalendar()
POLICY = DeadlinePolicy()
RESUME = DeadlinePolicy(supplement_clock="resume")
OFFICE_END = DeadlinePolicy(deadline_ends_at="end_of_office_hours")


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=VN)


def days(n: float, unit: TimeUnit = TimeUnit.WORKING_DAYS) -> ProcessingTime:
    return ProcessingTime(value=n, unit=unit)


def due(
    t0: datetime,
    time_: ProcessingTime,
    policy: DeadlinePolicy = POLICY,
    pauses: Sequence[Pause] = (),
) -> datetime:
    return due_at(t0, time_, calendar=CALENDAR, policy=policy, pauses=pauses)


def start(
    received: datetime, *, online: bool, cutoff: bool = True, policy: DeadlinePolicy = POLICY
) -> datetime:
    return clock_start(received, online=online, cutoff_15h=cutoff, calendar=CALENDAR, policy=policy)


def end_of(y: int, m: int, d: int) -> datetime:
    return datetime.combine(date(y, m, d), time(23, 59, 59, 999999), tzinfo=VN)


# -- R1/R2/R4: working days -------------------------------------------------------------------


def test_worked_examples_as_due_dates() -> None:
    assert due(at(2019, 4, 26), days(5)) == end_of(2019, 5, 7)
    assert due(at(2019, 1, 31), days(10)) == end_of(2019, 2, 21)


def test_due_date_is_in_the_policy_time_zone_whatever_the_input_zone() -> None:
    # 20:00 UTC on Thu 25 Apr is 03:00 on Fri 26 Apr in Ha Noi: counted from the 26th.
    result = due(datetime(2019, 4, 25, 20, 0, tzinfo=UTC), days(5))
    assert result == end_of(2019, 5, 7)
    assert result.utcoffset() == timedelta(hours=7)


def test_deadline_can_end_at_office_closing() -> None:
    assert due(at(2019, 4, 26), days(5), OFFICE_END) == at(2019, 5, 7, 17, 0)


def test_fractional_days_round_up() -> None:
    assert due(at(2019, 3, 4), days(0.5)) == end_of(2019, 3, 5)
    assert due(at(2019, 3, 4), days(2.2)) == end_of(2019, 3, 7)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(DeadlineError, match="múi giờ"):
        due(datetime(2019, 3, 4, 10), days(5))


# -- R3: calendar days and months ---------------------------------------------------------------


def test_calendar_days_landing_on_a_holiday_move_to_the_next_working_day() -> None:
    # Fri 26 Apr + 3 = Mon 29 Apr (substituted day off), 30 Apr and 1 May holidays → Thu 2 May.
    assert due(at(2019, 4, 26), days(3, TimeUnit.CALENDAR_DAYS)) == end_of(2019, 5, 2)


def test_calendar_days_landing_on_a_weekend_or_a_make_up_saturday() -> None:
    assert due(at(2019, 3, 4), days(5, TimeUnit.CALENDAR_DAYS)) == end_of(2019, 3, 11)
    assert due(at(2019, 4, 24), days(10, TimeUnit.CALENDAR_DAYS)) == end_of(2019, 5, 4)


def test_months() -> None:
    assert due(at(2019, 1, 31), days(1, TimeUnit.MONTHS)) == end_of(2019, 2, 28)
    # 31 Jan 2020 + 1 month = Sat 29 Feb 2020 → Mon 2 Mar.
    assert due(at(2020, 1, 31), days(1, TimeUnit.MONTHS)) == end_of(2020, 3, 2)
    # 5 Jan 2019 + 1 month = Tue 5 Feb 2019, in Tết → Mon 11 Feb.
    assert due(at(2019, 1, 5), days(1, TimeUnit.MONTHS)) == end_of(2019, 2, 11)
    # Across the year end: 15 Nov 2019 + 2 months = Wed 15 Jan 2020.
    assert due(at(2019, 11, 15), days(2, TimeUnit.MONTHS)) == end_of(2020, 1, 15)


# -- working hours ------------------------------------------------------------------------------


def test_working_hours_skip_nights_weekends_and_holidays() -> None:
    # Fri 26 Apr 10:00: 7 h that day, 29 Apr–1 May off, Thu 2 May 9.5 h, Fri 3 May 3.5 h → 11:00.
    hours = days(20, TimeUnit.WORKING_HOURS)
    assert due(at(2019, 4, 26), hours) == at(2019, 5, 3, 11, 0)


def test_working_hours_starting_before_opening_and_ending_at_closing() -> None:
    hours = days(9.5, TimeUnit.WORKING_HOURS)
    assert due(at(2019, 3, 4, 6, 0), hours) == at(2019, 3, 4, 17, 0)
    assert due(at(2019, 3, 4, 18, 0), days(1, TimeUnit.WORKING_HOURS)) == at(2019, 3, 5, 8, 30)


# -- R5/R6: when the clock starts ---------------------------------------------------------------


def test_paper_dossier_before_and_at_the_cut_off_counts_from_its_receipt() -> None:
    assert start(at(2019, 4, 26, 14, 59), online=False) == at(2019, 4, 26, 14, 59)
    assert start(at(2019, 4, 26, 15, 0), online=False) == at(2019, 4, 26, 15, 0)


def test_paper_dossier_after_the_cut_off_is_received_the_next_working_day() -> None:
    t0 = start(at(2019, 4, 26, 15, 1), online=False)
    assert t0 == at(2019, 5, 2, 7, 30)
    # Counting then starts on Fri 3 May: 3, Sat 4, 6, 7, 8.
    assert due(t0, days(5)) == end_of(2019, 5, 8)


def test_the_cut_off_is_judged_in_local_time() -> None:
    assert start(datetime(2019, 3, 4, 8, 30, tzinfo=UTC), online=False) == at(2019, 3, 5, 7, 30)


def test_cut_off_only_for_procedures_that_have_it() -> None:
    assert start(at(2019, 3, 4, 16, 0), online=False, cutoff=False) == at(2019, 3, 4, 16, 0)


@pytest.mark.parametrize("cutoff", [True, False])
@pytest.mark.parametrize("hour", [8, 10, 14, 16, 20])
def test_paper_dossier_on_a_day_off_is_received_the_next_working_day_whatever_the_hour(
    cutoff: bool, hour: int
) -> None:
    assert start(at(2019, 3, 9, hour), online=False, cutoff=cutoff) == at(2019, 3, 11, 7, 30)
    assert start(at(2019, 2, 5, hour), online=False, cutoff=cutoff) == at(2019, 2, 11, 7, 30)


def test_online_dossier_in_office_hours_counts_at_once() -> None:
    assert start(at(2019, 3, 4, 16, 30), online=True) == at(2019, 3, 4, 16, 30)


def test_online_dossier_after_hours_or_on_a_holiday_counts_the_next_working_day() -> None:
    assert start(at(2019, 3, 8, 18, 0), online=True) == at(2019, 3, 11, 7, 30)  # Friday night
    assert start(at(2019, 3, 9, 10, 0), online=True) == at(2019, 3, 11, 7, 30)  # Saturday
    assert start(at(2019, 2, 5, 10, 0), online=True) == at(2019, 2, 11, 7, 30)  # Tết
    assert start(at(2019, 3, 5, 6, 0), online=True) == at(2019, 3, 5, 7, 30)  # before opening


def test_online_after_hours_rule_can_be_switched_off() -> None:
    policy = DeadlinePolicy(online_after_hours_counts_next_working_day=False)
    assert start(at(2019, 3, 9, 10, 0), online=True, policy=policy) == at(2019, 3, 9, 10, 0)


def test_online_weekend_submission_moves_the_due_date() -> None:
    # Sat 9 Mar → Mon 11 Mar 07:30; counting starts Tue 12: 5 working days → Mon 18 Mar.
    assert due(start(at(2019, 3, 9), online=True), days(5)) == end_of(2019, 3, 18)


# -- R7: pauses -----------------------------------------------------------------------------------

T0 = at(2019, 3, 4)  # Mon; 5 working days → Mon 11 Mar
SUPPLEMENT = Pause(at(2019, 3, 6, 9, 0), at(2019, 3, 8, 14, 0), "Bổ sung giấy phép")


def test_restart_counts_from_zero_after_the_supplement() -> None:
    assert due(T0, days(5)) == end_of(2019, 3, 11)
    assert due(T0, days(5), pauses=[SUPPLEMENT]) == end_of(2019, 3, 15)
    assert counting_start(T0, [SUPPLEMENT], POLICY) == SUPPLEMENT.ended_at


def test_restart_uses_the_end_of_the_last_pause() -> None:
    later = Pause(at(2019, 3, 12, 9, 0), at(2019, 3, 13, 9, 0), "Bổ sung lần 2")
    assert due(T0, days(5), pauses=[later, SUPPLEMENT]) == end_of(2019, 3, 20)


def test_resume_adds_each_working_day_touched_by_the_pause() -> None:
    # Wed 6, Thu 7, Fri 8 are (partly) paused: Tue 5, Mon 11, 12, 13, 14 → Thu 14 Mar.
    assert due(T0, days(5), RESUME, pauses=[SUPPLEMENT]) == end_of(2019, 3, 14)
    assert counting_start(T0, [SUPPLEMENT], RESUME) == T0


def test_resume_ignores_weekend_pauses_and_counts_overlaps_once() -> None:
    weekend = Pause(at(2019, 3, 9, 8, 0), at(2019, 3, 10, 20, 0), "Cuối tuần")
    assert due(T0, days(5), RESUME, pauses=[weekend]) == end_of(2019, 3, 11)
    overlapping = Pause(at(2019, 3, 7, 9, 0), at(2019, 3, 7, 11, 0), "Trùng")
    assert due(T0, days(5), RESUME, pauses=[SUPPLEMENT, overlapping]) == end_of(2019, 3, 14)


def test_resume_with_calendar_days() -> None:
    # Mon 4 + 5 calendar days = Sat 9 → Mon 11; three paused days → Tue 12.
    time_ = days(5, TimeUnit.CALENDAR_DAYS)
    assert due(T0, time_, RESUME, pauses=[SUPPLEMENT]) == end_of(2019, 3, 12)


def test_resume_with_working_hours_adds_the_paused_office_time() -> None:
    hours = days(16, TimeUnit.WORKING_HOURS)
    t0 = at(2019, 3, 4, 8, 0)
    assert due(t0, hours, RESUME) == at(2019, 3, 5, 14, 30)
    two_hours = Pause(at(2019, 3, 4, 10, 0), at(2019, 3, 4, 12, 0), "Bổ sung")
    assert due(t0, hours, RESUME, pauses=[two_hours]) == at(2019, 3, 5, 16, 30)


def test_pauses_before_t0_change_nothing() -> None:
    early = Pause(at(2019, 3, 1, 9, 0), at(2019, 3, 1, 11, 0), "Trước khi tiếp nhận")
    for policy in (POLICY, RESUME):
        assert due(T0, days(5), policy, pauses=[early]) == end_of(2019, 3, 11)


def test_an_open_pause_leaves_the_due_date_unknown() -> None:
    open_pause = Pause(at(2019, 3, 6), None, "Chờ bổ sung")
    assert is_paused([SUPPLEMENT, open_pause])
    assert not is_paused([SUPPLEMENT])
    for policy in (POLICY, RESUME):
        with pytest.raises(DeadlineError, match="tạm dừng"):
            due(T0, days(5), policy, pauses=[open_pause])


def test_a_pause_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(DeadlineError):
        due(T0, days(5), pauses=[Pause(at(2019, 3, 6), at(2019, 3, 5), "?")])


# -- extensions (Form 04) -----------------------------------------------------------------------

CURRENT = end_of(2019, 5, 10)  # Fri


def extend(**overrides: Any) -> None:
    args = {
        "current_due": CURRENT,
        "new_due": end_of(2019, 5, 17),
        "recorded_at": at(2019, 5, 9, 16, 0),
        "extensions_so_far": 0,
        "calendar": CALENDAR,
        "policy": POLICY,
    } | overrides
    check_extension(**args)


def test_an_extension_recorded_the_day_before_is_accepted() -> None:
    extend()  # no error


def test_a_second_extension_is_refused() -> None:
    with pytest.raises(DeadlineError, match="chỉ được gia hạn 1 lần"):
        extend(extensions_so_far=1)


@pytest.mark.parametrize("recorded", [at(2019, 5, 10, 8, 0), at(2019, 5, 13, 9, 0)])
def test_an_extension_recorded_on_or_after_the_due_day_is_refused(recorded: datetime) -> None:
    with pytest.raises(DeadlineError, match="ít nhất 1 ngày trước hạn"):
        extend(recorded_at=recorded)


def test_the_notice_is_judged_on_the_local_day() -> None:
    # 17:30 UTC on Thu 9 May is 00:30 on Fri 10 May in Ha Noi: the due day itself.
    with pytest.raises(DeadlineError):
        extend(recorded_at=datetime(2019, 5, 9, 17, 30, tzinfo=UTC))


@pytest.mark.parametrize("new_due", [end_of(2019, 5, 9), CURRENT])
def test_a_new_date_not_later_is_refused(new_due: datetime) -> None:
    with pytest.raises(DeadlineError, match="phải sau"):
        extend(new_due=new_due)


def test_a_new_date_on_a_non_working_day_is_refused() -> None:
    with pytest.raises(DeadlineError, match="không phải ngày làm việc"):
        extend(new_due=end_of(2019, 5, 12))  # Sunday
    extend(
        current_due=end_of(2019, 5, 2),
        new_due=end_of_day(date(2019, 5, 4), POLICY),  # the make-up Saturday
        recorded_at=at(2019, 4, 26),
    )


# -- score and overdue ---------------------------------------------------------------------------


def test_score() -> None:
    assert score(at(2019, 5, 6, 16, 0), end_of(2019, 5, 7), POLICY) == 2
    assert score(at(2019, 5, 7, 23, 0), end_of(2019, 5, 7), POLICY) == 1
    assert score(at(2019, 5, 8, 0, 1), end_of(2019, 5, 7), POLICY) == 0


def test_score_at_office_closing_and_in_local_time() -> None:
    deadline = at(2019, 5, 7, 17, 0)
    assert score(at(2019, 5, 7, 17, 0), deadline, OFFICE_END) == 1
    assert score(at(2019, 5, 7, 17, 30), deadline, OFFICE_END) == 0
    # 20:00 UTC on 6 May is 03:00 on the due day in Ha Noi: on time, not ahead.
    assert score(datetime(2019, 5, 6, 20, 0, tzinfo=UTC), end_of(2019, 5, 7), POLICY) == 1


def test_is_overdue() -> None:
    deadline = end_of(2019, 5, 7)
    assert not is_overdue(deadline, deadline)
    assert is_overdue(deadline + timedelta(microseconds=1), deadline)
    assert not is_overdue(at(2019, 5, 7, 23, 0), deadline)
    with pytest.raises(DeadlineError):
        is_overdue(datetime(2019, 5, 8), deadline)


# -- warning thresholds -------------------------------------------------------------------------


def test_linear_thresholds() -> None:
    t0, deadline = at(2019, 3, 4, 0, 0), at(2019, 3, 14, 0, 0)
    assert threshold_times(t0, deadline, [0.5, 0.8, 1.0]) == [
        (0.5, at(2019, 3, 9, 0, 0)),
        (0.8, at(2019, 3, 12, 0, 0)),
        (1.0, deadline),
    ]


def test_office_time_thresholds() -> None:
    # Mon 07:30 → Fri 17:00 is 5 × 9.5 h: half is 23.75 h (Wed 12:15), 80 % is 38 h (Thu 17:00).
    t0, deadline = at(2019, 3, 4, 7, 30), at(2019, 3, 8, 17, 0)
    result = threshold_times(t0, deadline, [0.5, 0.8, 1.0], calendar=CALENDAR, policy=OFFICE_END)
    assert result == [
        (0.5, at(2019, 3, 6, 12, 15)),
        (0.8, at(2019, 3, 7, 17, 0)),
        (1.0, deadline),
    ]


def test_threshold_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        threshold_times(at(2019, 3, 4), at(2019, 3, 8), [0.0])
    with pytest.raises(DeadlineError):
        threshold_times(at(2019, 3, 8), at(2019, 3, 4), [0.5])


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError):
        DeadlinePolicy(office_opens=time(17, 0), office_closes=time(7, 30))
    with pytest.raises(ValueError):
        DeadlinePolicy(supplement_clock="pause")  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(VN)
)
units = st.sampled_from(list(TimeUnit))
amounts = st.integers(min_value=1, max_value=60)
policies = st.builds(
    DeadlinePolicy,
    deadline_ends_at=st.sampled_from(["end_of_day", "end_of_office_hours"]),
    supplement_clock=st.sampled_from(["restart", "resume"]),
)


@st.composite
def closed_pauses(draw: st.DrawFn, after: datetime) -> list[Pause]:
    result = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        begin = after + timedelta(minutes=draw(st.integers(min_value=0, max_value=60 * 24 * 40)))
        length = timedelta(minutes=draw(st.integers(min_value=0, max_value=60 * 24 * 15)))
        result.append(Pause(begin, begin + length, "Bổ sung"))
    return result


@settings(deadline=None)
@given(t0=moments, n=amounts, unit=units, policy=policies)
def test_a_due_date_is_always_a_working_day(
    t0: datetime, n: int, unit: TimeUnit, policy: DeadlinePolicy
) -> None:
    result = due(t0, days(n, unit), policy)
    assert result > t0
    assert CALENDAR.is_working_day(result.astimezone(VN).date())


@settings(deadline=None)
@given(t0=moments, n=amounts, more=amounts, unit=units, policy=policies)
def test_more_time_never_gives_an_earlier_date(
    t0: datetime, n: int, more: int, unit: TimeUnit, policy: DeadlinePolicy
) -> None:
    assert due(t0, days(n + more, unit), policy) >= due(t0, days(n, unit), policy)


@settings(deadline=None)
@given(t0=moments, later=st.integers(min_value=0, max_value=60 * 24 * 30), n=amounts, unit=units)
def test_a_later_start_never_gives_an_earlier_date(
    t0: datetime, later: int, n: int, unit: TimeUnit
) -> None:
    assert due(t0 + timedelta(minutes=later), days(n, unit)) >= due(t0, days(n, unit))


@settings(deadline=None)
@given(data=st.data(), t0=moments, n=amounts, unit=units, policy=policies)
def test_a_pause_never_shortens_a_deadline(
    data: st.DataObject, t0: datetime, n: int, unit: TimeUnit, policy: DeadlinePolicy
) -> None:
    pauses = data.draw(closed_pauses(t0 - timedelta(days=5)))
    with_pauses = due(t0, days(n, unit), policy, pauses=pauses)
    assert with_pauses >= due(t0, days(n, unit), policy)
    assert CALENDAR.is_working_day(with_pauses.date())


@settings(deadline=None)
@given(
    received=st.datetimes(
        min_value=datetime(2015, 1, 1),
        max_value=datetime(2030, 12, 31),
        timezones=st.sampled_from([VN, UTC, ZoneInfo("Europe/Paris")]),
    ),
    online=st.booleans(),
    cutoff=st.booleans(),
)
def test_the_clock_never_starts_before_receipt(
    received: datetime, online: bool, cutoff: bool
) -> None:
    t0 = start(received, online=online, cutoff=cutoff)
    assert t0 >= received
    assert t0.utcoffset() == timedelta(hours=7)


@settings(deadline=None)
@given(
    data=st.data(),
    t0=moments,
    n=amounts,
    extra=st.integers(min_value=1, max_value=20),
    policy=policies,
)
def test_a_supplement_after_an_extension_never_moves_the_promised_date_earlier(
    data: st.DataObject, t0: datetime, n: int, extra: int, policy: DeadlinePolicy
) -> None:
    first_due = due(t0, days(n), policy)
    promised = end_of_day(CALENDAR.add_working_days(first_due.date(), extra), policy)
    recorded = t0 + (first_due - t0) / 2
    pauses = data.draw(closed_pauses(recorded))
    legal = due(t0, days(n), policy, pauses=pauses)
    kept = keep_extension(
        legal,
        extended_due=promised,
        extended_at=recorded,
        pauses=pauses,
        calendar=CALENDAR,
        policy=policy,
    )
    assert kept >= promised and kept >= legal
    assert CALENDAR.is_working_day(kept.astimezone(VN).date())

"""The working calendar: Viet Nam's holidays, swapped days and administrator changes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.processing.domain.calendar import CalendarChange, WorkingCalendar

CALENDAR = WorkingCalendar()


def test_worked_example_across_reunification_and_labour_day() -> None:
    # DOMAIN.md: received Fri 26 Apr 2019 + 5 working days → Tue 7 May 2019 (Sat 4 May worked).
    assert CALENDAR.add_working_days(date(2019, 4, 26), 5) == date(2019, 5, 7)


def test_worked_example_across_lunar_new_year() -> None:
    # DOMAIN.md: received Thu 31 Jan 2019 + 10 working days → Thu 21 Feb 2019.
    assert CALENDAR.add_working_days(date(2019, 1, 31), 10) == date(2019, 2, 21)


@pytest.mark.parametrize("day", [date(2019, 2, d) for d in range(4, 9)])
def test_tet_2019_is_five_days_off(day: date) -> None:
    assert not CALENDAR.is_working_day(day)
    assert CALENDAR.reason(day)


def test_swapped_days_2019() -> None:
    # Mon 31 Dec 2018 off, made up on Sat 5 Jan 2019; Mon 29 Apr off, made up on Sat 4 May.
    assert not CALENDAR.is_working_day(date(2018, 12, 31))
    assert CALENDAR.is_working_day(date(2019, 1, 5))
    assert not CALENDAR.is_working_day(date(2019, 4, 29))
    assert CALENDAR.is_working_day(date(2019, 5, 4))
    assert CALENDAR.reason(date(2019, 5, 4)) == "ngày làm bù"
    assert not CALENDAR.is_working_day(date(2019, 5, 11))  # an ordinary Saturday


def test_hung_kings_on_a_sunday_gives_the_monday_off() -> None:
    assert not CALENDAR.is_working_day(date(2019, 4, 15))


def test_national_day_has_an_adjacent_day_since_2021() -> None:
    assert not CALENDAR.is_working_day(date(2021, 9, 2))
    assert not CALENDAR.is_working_day(date(2021, 9, 3))


def test_year_boundary_with_new_year_and_a_make_up_saturday() -> None:
    # Fri 28 Dec 2018: Mon 31 Dec and Tue 1 Jan off; Wed 2, Thu 3, Fri 4, Sat 5 (worked), Mon 7.
    assert CALENDAR.add_working_days(date(2018, 12, 28), 5) == date(2019, 1, 7)
    assert CALENDAR.next_working_day(date(2018, 12, 28)) == date(2019, 1, 2)


def test_next_working_day_is_strictly_after() -> None:
    assert CALENDAR.next_working_day(date(2019, 3, 4)) == date(2019, 3, 5)
    assert CALENDAR.next_working_day(date(2019, 3, 8)) == date(2019, 3, 11)


def test_zero_and_negative_counts() -> None:
    assert CALENDAR.add_working_days(date(2019, 3, 9), 0) == date(2019, 3, 9)
    with pytest.raises(ValueError):
        CALENDAR.add_working_days(date(2019, 3, 9), -1)


def test_long_counts_cross_several_years() -> None:
    start = date(2019, 1, 2)
    end = CALENDAR.add_working_days(start, 1000)
    assert end.year >= 2022
    assert CALENDAR.working_days_between(start, end) == 1000


def test_working_days_between_counts_the_end_not_the_start() -> None:
    assert CALENDAR.working_days_between(date(2019, 4, 26), date(2019, 5, 7)) == 5
    assert CALENDAR.working_days_between(date(2019, 5, 7), date(2019, 4, 26)) == -5
    assert CALENDAR.working_days_between(date(2019, 5, 7), date(2019, 5, 7)) == 0


def test_administrator_days_off_and_working_days() -> None:
    calendar = WorkingCalendar(
        extra_days_off=[date(2019, 3, 6)], extra_working_days=[date(2019, 3, 9)]
    )
    assert not calendar.is_working_day(date(2019, 3, 6))
    assert calendar.is_working_day(date(2019, 3, 9))
    # Mon 4 Mar + 5: Tue 5, (Wed 6 off), Thu 7, Fri 8, Sat 9 (worked), Mon 11.
    assert calendar.add_working_days(date(2019, 3, 4), 5) == date(2019, 3, 11)
    assert CALENDAR.add_working_days(date(2019, 3, 4), 5) == date(2019, 3, 11)
    assert calendar.add_working_days(date(2019, 3, 4), 4) == date(2019, 3, 9)
    assert CALENDAR.add_working_days(date(2019, 3, 4), 4) == date(2019, 3, 8)


def test_administrator_can_cancel_an_official_holiday() -> None:
    calendar = WorkingCalendar(extra_working_days=[date(2019, 4, 29)])
    assert calendar.is_working_day(date(2019, 4, 29))
    assert calendar.add_working_days(date(2019, 4, 26), 1) == date(2019, 4, 29)


def test_later_announced_change_wins_and_keeps_its_reason() -> None:
    day = date(2027, 4, 26)
    calendar = WorkingCalendar(
        changes=[
            CalendarChange(day, working=False, reason="Nghỉ bù dự kiến"),
            CalendarChange(day, working=True, reason="Thông báo hủy nghỉ bù"),
        ]
    )
    assert calendar.is_working_day(day)
    assert calendar.reason(day) == "Thông báo hủy nghỉ bù"


def test_changes_override_the_short_lists() -> None:
    day = date(2027, 4, 26)
    calendar = WorkingCalendar(
        extra_days_off=[day], changes=[CalendarChange(day, working=True, reason="x")]
    )
    assert calendar.is_working_day(day)


def test_a_date_in_both_short_lists_is_refused() -> None:
    with pytest.raises(ValueError, match="2019-03-06"):
        WorkingCalendar(extra_days_off=[date(2019, 3, 6)], extra_working_days=[date(2019, 3, 6)])


days = st.dates(min_value=date(2012, 1, 1), max_value=date(2032, 12, 31))


@settings(deadline=None)
@given(day=days, n=st.integers(min_value=1, max_value=80))
def test_add_working_days_matches_a_day_by_day_walk(day: date, n: int) -> None:
    walked, left = day, n
    while left:
        walked += timedelta(days=1)
        if CALENDAR.is_working_day(walked):
            left -= 1
    assert CALENDAR.add_working_days(day, n) == walked
    assert CALENDAR.working_days_between(day, walked) == n


def test_years_the_official_calendar_does_not_cover_are_known() -> None:
    """The `holidays` package covers VN from 1901 to 2100; beyond, no holiday is known and every
    weekday would count as a working day — the workflow reports such due dates."""
    assert CALENDAR.has_official_calendar(2019) and CALENDAR.has_official_calendar(2100)
    assert not CALENDAR.has_official_calendar(2101)
    assert not CALENDAR.has_official_calendar(1900)

from datetime import UTC, datetime

import pytest

from services.intake.domain.dossier_code import format_code, seconds_to_next_day, sequence_key
from shared.contracts.events import DOSSIER_CODE_PATTERN


def test_code_has_the_agency_the_vietnamese_date_and_a_four_digit_sequence() -> None:
    received = datetime(2021, 5, 31, 2, 0, tzinfo=UTC)  # 09:00 in Ha Noi
    assert format_code("000.17.22.H56", received, 1) == "000.17.22.H56-210531-0001"


def test_the_day_is_counted_in_vietnam_not_utc() -> None:
    late_utc = datetime(2019, 4, 25, 18, 30, tzinfo=UTC)  # already 26 Apr 01:30 in Ha Noi
    assert sequence_key("000.00.21.G12", late_utc) == "000.00.21.G12-190426"


def test_codes_match_the_published_event_pattern() -> None:
    import re

    code = format_code("000.00.21.G12", datetime(2026, 1, 2, tzinfo=UTC), 9999)
    assert re.match(DOSSIER_CODE_PATTERN, code)


@pytest.mark.parametrize("sequence", [0, 10000])
def test_a_sequence_outside_four_digits_is_refused(sequence: int) -> None:
    with pytest.raises(ValueError):
        format_code("000.00.21.G12", datetime(2026, 1, 2, tzinfo=UTC), sequence)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        sequence_key("000.00.21.G12", datetime(2026, 1, 2))


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2026, 12, 7, 16, 59, 59, tzinfo=UTC), 1),  # 23:59:59 in Ha Noi
        (datetime(2026, 12, 7, 17, 0, 0, tzinfo=UTC), 24 * 3600),  # midnight there
        (datetime(2026, 12, 7, 5, 0, 0, 500_000, tzinfo=UTC), 12 * 3600),  # rounded up
    ],
)
def test_numbering_resumes_at_midnight_in_viet_nam(now: datetime, seconds: int) -> None:
    assert seconds_to_next_day(now) == seconds

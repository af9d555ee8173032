from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.reporting.domain.contributions import (
    contributions,
    counter_key,
    difference,
    score,
    to_triples,
)
from services.reporting.domain.indicators import (
    CatalogueEntry,
    catalogue_rollup,
    indicators,
    total,
)
from services.reporting.domain.public_figures import year_to_date_quarters
from services.reporting.domain.quarters import quarter_of, quarters_between


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_quarters_are_read_in_viet_nam_time() -> None:
    # 31 Mar 17:00 UTC is 1 Apr 00:00 in Ha Noi: already the second quarter.
    assert quarter_of(utc(2024, 3, 31, 16, 59, 59)) == "2024-Q1"
    assert quarter_of(utc(2024, 3, 31, 17, 0, 0)) == "2024-Q2"
    assert quarter_of(utc(2024, 12, 31, 17, 0, 0)) == "2025-Q1"


def test_a_date_range_rolls_up_into_the_quarters_it_touches() -> None:
    assert quarters_between(date(2024, 2, 10), date(2024, 7, 1)) == [
        "2024-Q1",
        "2024-Q2",
        "2024-Q3",
    ]
    assert quarters_between(date(2024, 11, 1), date(2025, 1, 1)) == ["2024-Q4", "2025-Q1"]
    with pytest.raises(ValueError):
        quarters_between(date(2024, 2, 1), date(2024, 1, 1))


def test_scoring_against_the_due_date_in_viet_nam_days() -> None:
    due = utc(2024, 5, 10, 10, 0)  # 17:00 on 10 May in Ha Noi
    assert score(utc(2024, 5, 9, 16, 59), due, 0) == "finished_early"  # 9 May 23:59 local
    assert score(utc(2024, 5, 9, 17, 0), due, 0) == "finished_on_time"  # 10 May 00:00 local
    assert score(due, due, 0) == "finished_on_time"
    assert score(due + timedelta(seconds=1), due, 0) == "finished_late"
    assert score(utc(2024, 5, 1), due, 2) == "finished_late"  # > 1 supplement request
    assert score(utc(2024, 5, 1), None, 0) == "finished_on_time"


SUBMITTED = {
    "unit": "G12",
    "procedure": "1.001",
    "level": 4,
    "channel": 2,
    "at": utc(2024, 3, 31, 18),  # Q2 in Ha Noi
    "fee_vnd": 100_000,
    "documents": 1,
}


def step(state: int, previous: int | None, at: datetime, **extra: object) -> dict[str, object]:
    base = {"action": "x", "state": state, "previous_state": previous, "at": at}
    return base | {"due_at": None, "electronic_result": False} | extra


KEY_Q2 = counter_key("2024-Q2", "G12", "1.001", 2, 4)
KEY_Q3 = counter_key("2024-Q3", "G12", "1.001", 2, 4)


def test_nothing_counts_before_the_submission_is_known() -> None:
    assert contributions({"steps": [step(2, 1, utc(2024, 4, 2))]}) == {}


def test_an_open_dossier_counts_as_received_and_in_progress() -> None:
    got = contributions({"submitted": SUBMITTED, "payments": [{"at": utc(2024, 4, 1)}]})
    assert got == {
        KEY_Q2: {
            "received": 1,
            "online": 1,
            "with_fee": 1,
            "paid_online": 1,
            "in_progress": 1,
        }
    }


def test_a_result_counts_in_its_own_quarter_against_the_due_date_in_force() -> None:
    due = utc(2024, 7, 5, 10)
    facts = {
        "submitted": SUBMITTED,
        "steps": [
            step(2, 1, utc(2024, 4, 2), due_at=utc(2024, 6, 1)),
            step(4, 2, utc(2024, 4, 2)),
            step(5, 4, utc(2024, 4, 10)),
            step(4, 5, utc(2024, 4, 20), due_at=due),  # supplement: new due date
            step(9, 4, utc(2024, 7, 3), electronic_result=True),
            step(10, 9, utc(2024, 7, 20)),
        ],
        "notifications": [
            {"at": utc(2024, 7, 3), "status": "delivered"},
            {"at": utc(2024, 7, 3), "status": "technical-failure"},
        ],
    }
    got = contributions(facts)
    assert got[KEY_Q2] == {"received": 1, "online": 1, "with_fee": 1, "supplement_requests": 1}
    assert got[KEY_Q3] == {
        "results_issued": 1,
        "finished_early": 1,
        "digitised": 1,
        "notified_delivered": 1,
        "notified_failed": 1,
    }


@pytest.mark.parametrize(("given", "satisfied"), [(5, 1), (4, 1), (3, 0), (1, 0)])
def test_a_rating_counts_in_the_quarter_it_was_given(given: int, satisfied: int) -> None:
    facts = {
        "submitted": SUBMITTED,
        "steps": [step(2, 1, utc(2024, 4, 2)), step(10, 2, utc(2024, 6, 20))],
        "rating": {"at": utc(2024, 7, 1), "score": given},
    }
    got = contributions(facts)
    rated = {"rated": 1, "rating_points": given} | ({"rated_satisfied": 1} if satisfied else {})
    assert got[KEY_Q3] == rated
    assert "rated" not in got[KEY_Q2]
    t = total(got.values())
    [satisfaction] = [i for i in indicators(t) if i.code == "satisfaction_rate"]
    assert (satisfaction.numerator, satisfaction.denominator) == (satisfied, 1)


def test_refusals_withdrawals_and_overdue_flags() -> None:
    refused = {"submitted": SUBMITTED, "steps": [step(3, 1, utc(2024, 4, 2))]}
    assert contributions(refused)[KEY_Q2]["refused"] == 1
    late_refusal = {
        "submitted": SUBMITTED,
        "steps": [step(4, 2, utc(2024, 4, 2), due_at=utc(2024, 4, 5)), step(8, 4, utc(2024, 4, 9))],
    }
    assert contributions(late_refusal)[KEY_Q2]["finished_late"] == 1
    withdrawn = {
        "submitted": SUBMITTED,
        "steps": [step(7, 4, utc(2024, 4, 2)), step(8, 7, utc(2024, 4, 3))],
    }
    assert contributions(withdrawn)[KEY_Q2] == {
        "received": 1,
        "online": 1,
        "with_fee": 1,
        "withdrawn": 1,
    }
    overdue = {
        "submitted": SUBMITTED,
        "steps": [step(4, 4, utc(2024, 4, 9), action="overdue")],
    }
    assert contributions(overdue)[KEY_Q2]["in_progress_overdue"] == 1
    extended = {
        "submitted": SUBMITTED,
        "steps": [
            step(4, 4, utc(2024, 4, 9), action="overdue"),
            step(4, 4, utc(2024, 4, 10), action="extend", due_at=utc(2024, 4, 20)),
        ],
    }
    assert "in_progress_overdue" not in contributions(extended)[KEY_Q2]


def test_the_difference_moves_a_dossier_between_counters() -> None:
    before = contributions({"submitted": SUBMITTED})
    after = contributions({"submitted": SUBMITTED, "steps": [step(3, 1, utc(2024, 4, 2))]})
    assert difference(to_triples(before), after) == {KEY_Q2: {"in_progress": -1, "refused": 1}}
    assert difference(to_triples(after), after) == {}


def test_indicator_formulas() -> None:
    t = total(
        [
            {
                "received": 10,
                "online": 6,
                "with_fee": 4,
                "paid_online": 3,
                "finished_early": 2,
                "finished_on_time": 3,
                "finished_late": 1,
                "in_progress": 4,
                "in_progress_overdue": 1,
                "results_issued": 5,
                "digitised": 4,
                "rated": 5,
                "rated_satisfied": 4,
                "rating_points": 21,
            }
        ]
    )
    got = {i.code: (i.numerator, i.denominator, i.percent) for i in indicators(t)}
    assert got == {
        "on_time_rate": (8, 10, 80.0),
        "online_rate": (6, 10, 60.0),
        "online_payment_rate": (3, 4, 75.0),
        "digitisation_rate": (4, 5, 80.0),
        "overdue_rate": (2, 10, 20.0),
        "satisfaction_rate": (4, 5, 80.0),
    }
    assert all(i.percent is None for i in indicators(total([])))


def test_catalogue_rollup_level4_share_and_candidates() -> None:
    entries = [
        CatalogueEntry("A", "a", "G1", 4),
        CatalogueEntry("B", "b", "G1", 3),
        CatalogueEntry("C", "c", "G2", 3),
        CatalogueEntry("D", "d", "G2", 2),
        CatalogueEntry("E", "e", "G2", 3),
    ]
    rollup = catalogue_rollup(entries, {"A": 50, "B": 5, "C": 9, "D": 9})
    assert rollup.by_level == {1: 0, 2: 1, 3: 3, 4: 1}
    assert rollup.level4_share == 0.25
    assert rollup.meets_target is False
    assert [(e.code, n) for e, n in rollup.upgrade_candidates] == [("C", 9), ("D", 9), ("B", 5)]


def test_more_than_one_supplement_request_counts_an_open_dossier_as_late() -> None:
    """Decision 766: more than one supplement request counts as late, finished or not."""
    twice = {
        "submitted": SUBMITTED,
        "steps": [
            step(4, 2, utc(2024, 4, 2), due_at=utc(2024, 6, 1)),
            step(5, 4, utc(2024, 4, 3)),
            step(4, 5, utc(2024, 4, 5), due_at=utc(2024, 6, 5)),
            step(5, 4, utc(2024, 4, 8)),
        ],
    }
    got = contributions(twice)[KEY_Q2]
    assert got["in_progress"] == 1 and got["in_progress_late_by_supplements"] == 1
    assert "in_progress_overdue" not in got
    once = {"submitted": SUBMITTED, "steps": twice["steps"][:2]}
    assert "in_progress_late_by_supplements" not in contributions(once)[KEY_Q2]
    # Flagged overdue as well: counted once, as overdue.
    both = {
        "submitted": SUBMITTED,
        "steps": [
            *twice["steps"],
            step(4, 5, utc(2024, 4, 9), due_at=utc(2024, 6, 8)),
            step(4, 4, utc(2024, 6, 9), action="overdue"),
        ],
    }
    got = contributions(both)[KEY_Q2]
    assert got["in_progress_overdue"] == 1 and "in_progress_late_by_supplements" not in got

    rates = {
        i.code: (i.numerator, i.denominator)
        for i in indicators(total([contributions(twice)[KEY_Q2]]))
    }
    assert rates["on_time_rate"] == (0, 1)
    assert rates["overdue_rate"] == (1, 1)


def test_the_level4_target_is_compared_exactly() -> None:
    def rollup_of(level4: int, level3: int) -> object:
        entries = [CatalogueEntry(f"A{i}", "a", "G1", 4) for i in range(level4)]
        entries += [CatalogueEntry(f"B{i}", "b", "G1", 3) for i in range(level3)]
        return catalogue_rollup(entries, {})

    assert rollup_of(3, 7).meets_target is True  # exactly 30%
    assert rollup_of(299, 701).meets_target is False  # 29.9%
    assert rollup_of(77, 186).meets_target is False  # the shipped 77/263 = 29.28%
    # 2000/6667 = 29.9985%: rounds to 30.00% but is under the target.
    under = rollup_of(2000, 4667)
    assert under.meets_target is False and under.level4_share is not None
    assert under.level4_share < 0.30
    assert catalogue_rollup([CatalogueEntry("D", "d", "G1", 2)], {}).meets_target is None


def test_public_figures_cover_the_year_to_date() -> None:
    assert year_to_date_quarters(2026, date(2026, 5, 20)) == ["2026-Q1", "2026-Q2"]
    assert year_to_date_quarters(2025, date(2026, 5, 20)) == [f"2025-Q{q}" for q in (1, 2, 3, 4)]
    assert year_to_date_quarters(2027, date(2026, 5, 20)) == []

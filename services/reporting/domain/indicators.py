"""Report rows and the indicators of DOMAIN.md §5, each with its formula (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.reporting.domain.contributions import FIELDS
from shared.contracts.catalogue import LEVEL4_TARGET_SHARE, level4_target_met

LEVEL4_TARGET = float(LEVEL4_TARGET_SHARE)


@dataclass(frozen=True)
class Indicator:
    code: str
    name: str  # Vietnamese
    numerator: int
    denominator: int
    formula: str
    target_percent: float | None = None

    @property
    def percent(self) -> float | None:
        """Rounded to 0.01; None when there is nothing to measure."""
        if not self.denominator:
            return None
        return round(100 * self.numerator / self.denominator, 2)


@dataclass
class Totals:
    """Counter fields summed over some counters."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))

    def add(self, fields: Mapping[str, int]) -> None:
        for name in FIELDS:
            self.counts[name] += int(fields.get(name, 0))

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    @property
    def scored(self) -> int:
        return self["finished_early"] + self["finished_on_time"] + self["finished_late"]

    @property
    def in_progress_late(self) -> int:
        """Open dossiers counted as late: flagged overdue, or asked more than one supplement."""
        return self["in_progress_overdue"] + self["in_progress_late_by_supplements"]


def total(rows: Iterable[Mapping[str, int]]) -> Totals:
    result = Totals()
    for row in rows:
        result.add(row)
    return result


INDICATOR_FORMULAS: dict[str, str] = {
    "on_time_rate": (
        "(finished_early + finished_on_time + in_progress - in_progress_overdue"
        " - in_progress_late_by_supplements)"
        " / (finished_early + finished_on_time + finished_late + in_progress) × 100"
    ),
    "online_rate": "online / received × 100",
    "online_payment_rate": "paid_online / with_fee × 100",
    "digitisation_rate": "digitised / results_issued × 100",
    "overdue_rate": (
        "(finished_late + in_progress_overdue + in_progress_late_by_supplements)"
        " / (finished_early + finished_on_time + finished_late + in_progress) × 100"
    ),
    "satisfaction_rate": (
        "rated_satisfied / rated × 100 (applicants' ratings of finished dossiers; a score of 4"
        " or 5 of 5 is satisfied)"
    ),
}


def indicators(t: Totals) -> list[Indicator]:
    """Decision 766's indicators over the given totals (percentages)."""
    measured = t.scored + t["in_progress"]
    overdue = t["finished_late"] + t.in_progress_late
    return [
        Indicator(
            "on_time_rate",
            "Tỷ lệ hồ sơ giải quyết đúng hạn",
            t["finished_early"] + t["finished_on_time"] + t["in_progress"] - t.in_progress_late,
            measured,
            INDICATOR_FORMULAS["on_time_rate"],
        ),
        Indicator(
            "online_rate",
            "Tỷ lệ hồ sơ trực tuyến",
            t["online"],
            t["received"],
            INDICATOR_FORMULAS["online_rate"],
            50.0,
        ),
        Indicator(
            "online_payment_rate",
            "Tỷ lệ thanh toán trực tuyến",
            t["paid_online"],
            t["with_fee"],
            INDICATOR_FORMULAS["online_payment_rate"],
        ),
        Indicator(
            "digitisation_rate",
            "Tỷ lệ số hóa hồ sơ, kết quả",
            t["digitised"],
            t["results_issued"],
            INDICATOR_FORMULAS["digitisation_rate"],
            80.0,
        ),
        Indicator(
            "overdue_rate",
            "Tỷ lệ hồ sơ quá hạn",
            overdue,
            measured,
            INDICATOR_FORMULAS["overdue_rate"],
        ),
        Indicator(
            "satisfaction_rate",
            "Mức độ hài lòng",
            t["rated_satisfied"],
            t["rated"],
            INDICATOR_FORMULAS["satisfaction_rate"],
            90.0,
        ),
    ]


@dataclass(frozen=True)
class CatalogueEntry:
    code: str
    name: str
    unit_code: str
    level: int


@dataclass(frozen=True)
class CatalogueRollup:
    by_level: dict[int, int]
    upgrade_candidates: list[tuple[CatalogueEntry, int]]  # below level 4, by dossiers received

    @property
    def online(self) -> int:
        return self.by_level[3] + self.by_level[4]

    @property
    def level4_share(self) -> float | None:
        """Level 4 over online services (levels 3 and 4), as intake computes it; unrounded, so
        that the gauge compared with 0.30 by the alert rule is not rounded up to the target."""
        return self.by_level[4] / self.online if self.online else None

    @property
    def meets_target(self) -> bool | None:
        """Exactly, by the rule intake applies too; None when there is no online service."""
        return level4_target_met(self.by_level[4], self.online) if self.online else None


LEVEL4_FORMULA = "level_4 / (level_3 + level_4); target ≥ 30%, compared exactly (not rounded)"


def catalogue_rollup(
    procedures: Iterable[CatalogueEntry], received_by_procedure: Mapping[str, int], limit: int = 10
) -> CatalogueRollup:
    entries = list(procedures)
    by_level = {level: 0 for level in (1, 2, 3, 4)}
    for entry in entries:
        by_level[entry.level] += 1
    candidates = sorted(
        ((e, received_by_procedure.get(e.code, 0)) for e in entries if e.level < 4),
        key=lambda pair: (-pair[1], pair[0].code),
    )
    return CatalogueRollup(by_level, [c for c in candidates if c[1] > 0][:limit])

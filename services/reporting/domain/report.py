"""The quarterly report as a response model, assembled from counter rows and the catalogue copy,
and who may read which scope (pure: no I/O)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from services.reporting.domain.errors import NotAllowed
from services.reporting.domain.indicators import (
    LEVEL4_FORMULA,
    LEVEL4_TARGET,
    CatalogueEntry,
    Indicator,
    catalogue_rollup,
    indicators,
    total,
)

NOTES = [
    "Quarters are read in Viet Nam time (Asia/Ho_Chi_Minh).",
    "received, channels, with_fee, paid_online, in_progress(_overdue) count in the quarter the "
    "dossier was submitted; results, refusals, withdrawals, supplement requests and "
    "notifications in the quarter they happened.",
    "satisfaction_rate: applicants' ratings (dvc.dossier.rated.v1), counted in the quarter they "
    "were given; 4 or 5 of 5 is satisfied. rating_points / rated is the average score.",
    "in_progress_overdue: dossiers processing flagged overdue (action 'overdue') and not since "
    "extended.",
    "in_progress_late_by_supplements: open dossiers not flagged overdue but asked for more than "
    "one supplement; Decision 766 counts them as late, like finished ones (finished_late).",
]


class IndicatorOut(BaseModel):
    code: str
    name: str
    percent: float | None = Field(description="numerator / denominator × 100; null if no data")
    numerator: int
    denominator: int
    formula: str
    target_percent: float | None = None

    @classmethod
    def of(cls, indicator: Indicator) -> IndicatorOut:
        return cls(
            code=indicator.code,
            name=indicator.name,
            percent=indicator.percent,
            numerator=indicator.numerator,
            denominator=indicator.denominator,
            formula=indicator.formula,
            target_percent=indicator.target_percent,
        )


class Section(BaseModel):
    """Progress and results of one unit, or of the whole ministry."""

    unit_code: str | None = None
    unit_name: str | None = None
    counts: dict[str, int]
    indicators: list[IndicatorOut]


class Candidate(BaseModel):
    code: str
    name: str
    unit_code: str
    level: int
    received: int


class CatalogueOut(BaseModel):
    by_level: dict[str, int] = Field(description="Procedures per online service level")
    level4_share: float | None = Field(description="Fraction, 0..1")
    level4_target: float = LEVEL4_TARGET
    meets_target: bool | None
    formula: str = LEVEL4_FORMULA
    upgrade_candidates: list[Candidate] = Field(
        description="Procedures below level 4 with the most dossiers received in the period"
    )


class QuarterlyReport(BaseModel):
    quarters: list[str]
    scope: str = Field(description="'ministry' or the unit code of a unit head")
    ministry: Section
    units: list[Section]
    catalogue: CatalogueOut
    notes: list[str] = NOTES


def _section(rows: Iterable[Mapping[str, Any]], unit: str | None, name: str | None) -> Section:
    totals = total(rows)
    return Section(
        unit_code=unit,
        unit_name=name,
        counts=dict(totals.counts),
        indicators=[IndicatorOut.of(i) for i in indicators(totals)],
    )


def report_scope(is_admin: bool, reader_unit: str | None, unit: str | None) -> str | None:
    """The unit a report is restricted to (None: the whole ministry). Admins see every unit, or
    the one they ask for; unit heads see their own unit only."""
    if is_admin:
        return unit
    if reader_unit is None:
        raise NotAllowed("A unit head needs a unit.")
    if unit is not None and unit != reader_unit:
        raise NotAllowed("Unit heads see their own unit only.")
    return reader_unit


def build_report(
    quarters: list[str],
    rows: Sequence[Mapping[str, Any]],
    procedures: Sequence[Mapping[str, Any]],
    unit: str | None = None,
) -> QuarterlyReport:
    """`unit` restricts every figure (and the catalogue) to one unit."""
    if unit is not None:
        rows = [r for r in rows if r["unit"] == unit]
        procedures = [p for p in procedures if p["unit_code"] == unit]
    unit_names = {p["unit_code"]: p.get("unit_name") for p in procedures}
    by_unit: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    received: dict[str, int] = defaultdict(int)
    for row in rows:
        by_unit[row["unit"]].append(row)
        received[row["procedure"]] += int(row.get("received", 0))
    rollup = catalogue_rollup(
        [CatalogueEntry(p["_id"], p["name"], p["unit_code"], p["level"]) for p in procedures],
        received,
    )
    return QuarterlyReport(
        quarters=quarters,
        scope=unit or "ministry",
        ministry=_section(rows, unit, unit_names.get(unit) if unit else None),
        units=[_section(by_unit[u], u, unit_names.get(u)) for u in sorted(by_unit)],
        catalogue=CatalogueOut(
            by_level={str(level): n for level, n in rollup.by_level.items()},
            level4_share=rollup.level4_share,
            meets_target=rollup.meets_target,
            upgrade_candidates=[
                Candidate(
                    code=e.code, name=e.name, unit_code=e.unit_code, level=e.level, received=n
                )
                for e, n in rollup.upgrade_candidates
            ],
        ),
    )

"""The public year-to-date figures (DOMAIN.md §1: each service publishes online dossiers received,
resolved, the on-time rate, online vs offline totals and satisfaction), per unit and per
procedure, for anyone to read (pure).

Aggregates only: counts and percentages of the counters, nothing about any one dossier or
person. The figures of a year are those of its quarters up to the one in progress.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from pydantic import BaseModel, Field

from services.reporting.domain.indicators import (
    LEVEL4_TARGET,
    Indicator,
    Totals,
    indicators,
    total,
)
from services.reporting.domain.quarters import quarter_label
from shared.contracts.catalogue import level4_target_met

LEVEL4_TARGET_PERCENT = round(100 * LEVEL4_TARGET, 2)


def year_to_date_quarters(year: int, today: date) -> list[str]:
    """The quarters of `year` up to the one `today` is in (all four for a past year, none for a
    future one)."""
    if year > today.year:
        return []
    last = 4 if year < today.year else (today.month - 1) // 3 + 1
    return [quarter_label(year, quarter) for quarter in range(1, last + 1)]


class Figures(BaseModel):
    """The figures of one scope (the ministry, a unit or a procedure)."""

    received: int = Field(description="Dossiers received (every channel)")
    online: int = Field(description="Of which submitted online")
    online_percent: float | None = Field(description="online / received × 100")
    resolved: int = Field(description="Dossiers finished with a result or a refusal, scored")
    on_time_percent: float | None = Field(
        description="Decision 766's on-time rate: finished on time or still within the deadline"
    )
    rated: int = Field(description="Satisfaction ratings given by applicants")
    satisfaction_percent: float | None = Field(
        description="Ratings of 4 or 5 (of 5) over all ratings × 100"
    )
    average_score: float | None = Field(description="Average rating, 1..5")


class LevelShare(BaseModel):
    """The decision's target: at least 30% of the online services (levels 3-4) at level 4."""

    level4_procedures: int
    online_procedures: int = Field(description="Procedures at level 3 or 4")
    level4_percent: float | None
    target_percent: float = LEVEL4_TARGET_PERCENT
    meets_target: bool | None = Field(description="Compared exactly; null without online services")


class UnitFigures(Figures):
    unit_code: str
    unit_name: str | None = None
    level4: LevelShare


class ProcedureFigures(Figures):
    procedure_code: str
    procedure_name: str | None = None
    unit_code: str
    level: int | None = Field(description="Online service level (1-4)")


class MinistryFigures(Figures):
    level4: LevelShare


class PublicFigures(BaseModel):
    year: int
    quarters: list[str] = Field(description="The quarters counted (year to date)")
    as_of: date = Field(description="The day the figures were computed (Viet Nam time)")
    generated_at: datetime
    ministry: MinistryFigures
    units: list[UnitFigures]
    procedures: list[ProcedureFigures]
    notes: list[str] = [
        "Aggregates only: no personal data.",
        "on_time_percent follows Decision 766: finished on time or still within the deadline, "
        "over dossiers finished or in progress; more than one supplement request counts late.",
        "satisfaction_percent: applicants rate a finished dossier 1-5; 4 and 5 are satisfied.",
        "level4: procedures of the catalogue at level 4 over those at levels 3 and 4; the "
        "decision's target is at least 30%.",
    ]


def _percent(indicator: Indicator) -> float | None:
    return indicator.percent


def _figures(totals: Totals) -> dict[str, object]:
    found = {i.code: i for i in indicators(totals)}
    rated = totals["rated"]
    return {
        "received": totals["received"],
        "online": totals["online"],
        "online_percent": _percent(found["online_rate"]),
        "resolved": totals.scored,
        "on_time_percent": _percent(found["on_time_rate"]),
        "rated": rated,
        "satisfaction_percent": _percent(found["satisfaction_rate"]),
        "average_score": round(totals["rating_points"] / rated, 2) if rated else None,
    }


def _level_share(levels: Iterable[int]) -> LevelShare:
    levels = list(levels)
    level4 = sum(1 for level in levels if level == 4)
    online = sum(1 for level in levels if level in (3, 4))
    return LevelShare(
        level4_procedures=level4,
        online_procedures=online,
        level4_percent=round(100 * level4 / online, 2) if online else None,
        meets_target=level4_target_met(level4, online) if online else None,
    )


def build_public_figures(
    year: int,
    quarters: list[str],
    rows: Sequence[Mapping[str, object]],
    procedures: Sequence[Mapping[str, object]],
    *,
    as_of: date,
    generated_at: datetime,
) -> PublicFigures:
    """The figures of the counter `rows` (of `quarters`) with the catalogue copy `procedures`.
    Every unit and procedure of the catalogue is listed, with zeros where nothing was counted."""
    by_unit: dict[str, list[Mapping[str, object]]] = defaultdict(list)
    by_procedure: dict[str, list[Mapping[str, object]]] = defaultdict(list)
    for row in rows:
        by_unit[str(row["unit"])].append(row)
        by_procedure[str(row["procedure"])].append(row)
    catalogue = {str(p["_id"]): p for p in procedures}
    unit_names = {str(p["unit_code"]): p.get("unit_name") for p in procedures}
    unit_levels: dict[str, list[int]] = defaultdict(list)
    for p in procedures:
        unit_levels[str(p["unit_code"])].append(int(str(p["level"])))

    units = [
        UnitFigures(
            unit_code=unit,
            unit_name=str(unit_names[unit]) if unit_names.get(unit) else None,
            level4=_level_share(unit_levels.get(unit, [])),
            **_figures(total(by_unit.get(unit, []))),  # type: ignore[arg-type]
        )
        for unit in sorted(set(by_unit) | set(unit_names))
    ]
    procedure_rows = []
    for code in sorted(set(by_procedure) | set(catalogue)):
        entry = catalogue.get(code)
        counted = by_procedure.get(code, [])
        unit = str(entry["unit_code"]) if entry else str(counted[0]["unit"])
        level = int(str(entry["level"])) if entry else int(str(counted[0]["level"]))
        procedure_rows.append(
            ProcedureFigures(
                procedure_code=code,
                procedure_name=str(entry["name"]) if entry else None,
                unit_code=unit,
                level=level,
                **_figures(total(counted)),  # type: ignore[arg-type]
            )
        )
    ministry = MinistryFigures(
        level4=_level_share(int(str(p["level"])) for p in procedures),
        **_figures(total(rows)),  # type: ignore[arg-type]
    )
    return PublicFigures(
        year=year,
        quarters=quarters,
        as_of=as_of,
        generated_at=generated_at,
        ministry=ministry,
        units=units,
        procedures=procedure_rows,
    )


CSV_COLUMNS = (
    "scope",
    "unit_code",
    "unit_name",
    "procedure_code",
    "procedure_name",
    "level",
    "received",
    "online",
    "online_percent",
    "resolved",
    "on_time_percent",
    "level4_procedures",
    "online_procedures",
    "level4_percent",
    "level4_target_percent",
    "rated",
    "satisfaction_percent",
    "average_score",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def to_csv(figures: PublicFigures) -> str:
    """One row for the ministry, one per unit, one per procedure (UTF-8, comma-separated,
    percentages with two decimals, empty where there is nothing to measure)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def row(scope: str, f: Figures, level4: LevelShare | None, **names: object) -> None:
        values: dict[str, object] = {"scope": scope, **names, **f.model_dump()}
        if level4 is not None:
            values |= {
                "level4_procedures": level4.level4_procedures,
                "online_procedures": level4.online_procedures,
                "level4_percent": level4.level4_percent,
                "level4_target_percent": level4.target_percent,
            }
        writer.writerow([_cell(values.get(column)) for column in CSV_COLUMNS])

    row("ministry", figures.ministry, figures.ministry.level4)
    for unit in figures.units:
        row("unit", unit, unit.level4, unit_code=unit.unit_code, unit_name=unit.unit_name)
    for procedure in figures.procedures:
        row(
            "procedure",
            procedure,
            None,
            unit_code=procedure.unit_code,
            procedure_code=procedure.procedure_code,
            procedure_name=procedure.procedure_name,
            level=procedure.level,
        )
    return out.getvalue()

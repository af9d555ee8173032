"""The procedure catalogue: parsing the shipped data, accent-insensitive search and the level
roll-up.

Pure functions over `shared.contracts.catalogue.Procedure`; the data files packaged in
`services/intake/catalogue/` are read by `services.intake.adapters.shipped_catalogue`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from shared.contracts.catalogue import LEVEL4_TARGET_SHARE, Procedure, level4_target_met

# The shipped data files, as named in parse errors.
PROCEDURES_FILE = "procedures.json"
UNITS_FILE = "units.csv"

LEVEL4_TARGET = float(LEVEL4_TARGET_SHARE)
"""Decision 4094/QĐ-BKHCN: at least 30% of the online services (levels 3 and 4) at level 4;
compared exactly by `shared.contracts.catalogue.level4_target_met`, as reporting does."""

LARGE_VOLUME_PER_YEAR = 500
"""Dossiers a year from which a level-3 procedure counts as having a large volume.

A fixed threshold rather than a top decile: it does not move when procedures are added, and a
unit can see why a procedure is (not) a candidate.
"""


class CatalogueDataError(ValueError):
    """The catalogue data is invalid; the message names the offending row."""


class Unit(BaseModel):
    """A lead unit (đơn vị chủ trì) of the Ministry."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(min_length=1)
    name_vi: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    agency_id: str | None = Field(default=None, description="National dotted agency id, if known")
    other_names: list[str] = Field(
        default_factory=list, description="Other names under which source records cite the unit"
    )


# ── parsing ──────────────────────────────────────────────────────────────────────────────────────
def parse_units(rows: Iterable[Mapping[str, str]]) -> list[Unit]:
    """Units from `units.csv` rows (`other_names` separated by " | ")."""
    units: list[Unit] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        try:
            unit = Unit(
                code=row["unit_code"],
                name_vi=row["name_vi"],
                name_en=row["name_en"],
                agency_id=row.get("agency_id") or None,
                other_names=[n.strip() for n in (row.get("other_names") or "").split("|") if n],
            )
        except KeyError as error:
            raise CatalogueDataError(f"{UNITS_FILE} row {number}: missing {error}") from error
        except ValidationError as error:
            raise CatalogueDataError(f"{UNITS_FILE} row {number}: {_summary(error)}") from error
        if unit.code in seen:
            raise CatalogueDataError(f"{UNITS_FILE} row {number}: duplicate unit {unit.code!r}")
        seen.add(unit.code)
        units.append(unit)
    return units


def parse_procedures(
    records: Sequence[Mapping[str, Any]], units: Sequence[Unit] | None = None
) -> list[Procedure]:
    """Validate every record into a `Procedure`; codes must be unique and units known.

    Extra keys of a record (`filled`, `real_record`, `fee_note`) are provenance for readers and
    are not part of the contract.
    """
    known_units = {unit.code for unit in units} if units is not None else None
    procedures: list[Procedure] = []
    first_row: dict[str, int] = {}
    for number, record in enumerate(records, start=1):
        label = f"{PROCEDURES_FILE} procedure {number} (code {record.get('code')!r})"
        try:
            procedure = Procedure.model_validate(record)
        except ValidationError as error:
            raise CatalogueDataError(f"{label}: {_summary(error)}") from error
        if procedure.code in first_row:
            raise CatalogueDataError(
                f"{label}: duplicate code, first used by procedure {first_row[procedure.code]}"
            )
        if known_units is not None and procedure.unit_code not in known_units:
            raise CatalogueDataError(f"{label}: unknown unit_code {procedure.unit_code!r}")
        first_row[procedure.code] = number
        procedures.append(procedure)
    return procedures


def _summary(error: ValidationError) -> str:
    """One line per field: "level: Input should be less than or equal to 4"."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'record'}: {item['msg']}"
        for item in error.errors()
    )


# ── search ───────────────────────────────────────────────────────────────────────────────────────
_TOKEN = re.compile(r"[0-9a-z]+(?:[.\-][0-9a-z]+)*")


def fold(text: str) -> str:
    """Lower-case, without diacritics (đ → d), whitespace collapsed: the form search compares.

    >>> fold("  Chuyển giao   CÔNG NGHỆ, Đo lường ")
    'chuyen giao cong nghe, do luong'
    """
    decomposed = unicodedata.normalize("NFD", text.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    # đ has no decomposition; ð (U+00F0, from a mistyped Ð) stands for it in some sources.
    bare = bare.replace("đ", "d").replace("ð", "d")
    return " ".join(bare.split())


def search_text(procedure: Procedure) -> str:
    """The folded text a search looks in: code, name, field, unit code and unit name.

    Store it beside the procedure (e.g. a `search` field in MongoDB) and look up each of
    `query_terms(q)` in it with a contains regex: `{"search": {"$regex": re.escape(term)}}`.
    """
    parts = (procedure.code, procedure.name, procedure.field, procedure.unit_code)
    return fold(" ".join((*parts, procedure.unit_name)))


def search_tokens(procedure: Procedure) -> list[str]:
    """The distinct words of `search_text`, sorted: for a multikey index and prefix queries."""
    return sorted(set(_TOKEN.findall(search_text(procedure))))


def query_terms(query: str) -> list[str]:
    """The folded words of a query, punctuation dropped: "Chuyển giao," → ["chuyen", "giao"]."""
    return _TOKEN.findall(fold(query))


def matches(procedure: Procedure, query: str) -> bool:
    """True when every word of the query occurs in the procedure's search text (an empty query
    matches everything)."""
    text = search_text(procedure)
    return all(term in text for term in query_terms(query))


# ── roll-up ──────────────────────────────────────────────────────────────────────────────────────
class LevelCounts(BaseModel):
    """Procedures by service level; online services are levels 3 and 4."""

    level_1: int = 0
    level_2: int = 0
    level_3: int = 0
    level_4: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return self.level_1 + self.level_2 + self.level_3 + self.level_4

    @computed_field  # type: ignore[prop-decorator]
    @property
    def online(self) -> int:
        return self.level_3 + self.level_4

    @computed_field  # type: ignore[prop-decorator]
    @property
    def level4_share(self) -> float | None:
        """Level 4 over online services; None when there is no online service."""
        return self.level_4 / self.online if self.online else None


class UnitLevelCounts(LevelCounts):
    unit_code: str
    unit_name: str


class UpgradeReason(StrEnum):
    LARGE_VOLUME = "large_volume"
    SHARED_WORKFLOW = "shared_workflow"
    SPECIALISED_INSPECTION = "specialised_inspection"


class UpgradeCandidate(BaseModel):
    """A level-3 procedure worth bringing to level 4, and why."""

    code: str
    name: str
    unit_code: str
    volume: int = Field(description="Dossiers a year used for the ranking")
    volume_source: Literal["reported", "catalogue", "unknown"]
    reasons: list[UpgradeReason] = Field(min_length=1)
    workflow_group: str | None = None
    workflow_peers: list[str] = Field(
        default_factory=list, description="Codes of the other procedures sharing the workflow"
    )
    workflow_has_level4: bool = Field(
        default=False, description="A procedure of the same workflow already runs at level 4"
    )


class CatalogueRollup(BaseModel):
    overall: LevelCounts
    units: list[UnitLevelCounts]
    level4_numerator: int = Field(description="Procedures at level 4")
    level4_denominator: int = Field(description="Online services: procedures at level 3 or 4")
    level4_share: float | None = Field(description="numerator / denominator; None if no online")
    target: float
    target_met: bool
    large_volume_threshold: int
    candidates: list[UpgradeCandidate] = Field(description="By volume, largest first")


def count_levels(procedures: Iterable[Procedure]) -> LevelCounts:
    counts = {level: 0 for level in (1, 2, 3, 4)}
    for procedure in procedures:
        counts[procedure.level] += 1
    return LevelCounts(level_1=counts[1], level_2=counts[2], level_3=counts[3], level_4=counts[4])


def rollup(
    procedures: Sequence[Procedure],
    volumes: Mapping[str, int] | None = None,
    *,
    units: Sequence[Unit] | None = None,
    large_volume_threshold: int = LARGE_VOLUME_PER_YEAR,
    target: float = LEVEL4_TARGET,
) -> CatalogueRollup:
    """Counts by level per unit and overall, the level-4 share against the target, and the
    level-3 procedures that are candidates for level 4.

    `volumes`: dossiers a year by procedure code, e.g. received counts from reporting (annualised
    by the caller); a procedure missing from it falls back to its catalogue `annual_volume`.
    `units`: list every unit (also those without procedures) in this order, with its name;
    without it, units appear in the order their first procedure does.
    """
    overall = count_levels(procedures)
    share = overall.level4_share
    met = level4_target_met(overall.level_4, overall.online, target)
    return CatalogueRollup(
        overall=overall,
        units=_unit_counts(procedures, units),
        level4_numerator=overall.level_4,
        level4_denominator=overall.online,
        level4_share=share,
        target=target,
        target_met=met,
        large_volume_threshold=large_volume_threshold,
        candidates=upgrade_candidates(procedures, volumes, large_volume_threshold),
    )


def _unit_counts(
    procedures: Sequence[Procedure], units: Sequence[Unit] | None
) -> list[UnitLevelCounts]:
    by_unit: dict[str, list[Procedure]] = defaultdict(list)
    for procedure in procedures:
        by_unit[procedure.unit_code].append(procedure)
    names = {unit.code: unit.name_vi for unit in units or ()}
    order = [unit.code for unit in units or ()]
    order += [code for code in by_unit if code not in names]
    result = []
    for code in order:
        members = by_unit.get(code, [])
        name = names.get(code) or members[0].unit_name
        counts = count_levels(members)
        result.append(UnitLevelCounts(unit_code=code, unit_name=name, **counts.model_dump()))
    return result


def upgrade_candidates(
    procedures: Sequence[Procedure],
    volumes: Mapping[str, int] | None = None,
    large_volume_threshold: int = LARGE_VOLUME_PER_YEAR,
) -> list[UpgradeCandidate]:
    """Level-3 procedures with a large volume, a workflow shared with other procedures, or tied
    to specialised inspection — each with its reasons, largest volume first (then by code)."""
    groups: dict[str, list[Procedure]] = defaultdict(list)
    for procedure in procedures:
        if procedure.workflow_group:
            groups[procedure.workflow_group].append(procedure)
    candidates = []
    for procedure in procedures:
        if procedure.level != 3:
            continue
        volume, source = _volume(procedure, volumes)
        peers = [p for p in groups.get(procedure.workflow_group or "", []) if p is not procedure]
        reasons = []
        if volume >= large_volume_threshold:
            reasons.append(UpgradeReason.LARGE_VOLUME)
        if peers:
            reasons.append(UpgradeReason.SHARED_WORKFLOW)
        if procedure.specialised_inspection:
            reasons.append(UpgradeReason.SPECIALISED_INSPECTION)
        if not reasons:
            continue
        candidates.append(
            UpgradeCandidate(
                code=procedure.code,
                name=procedure.name,
                unit_code=procedure.unit_code,
                volume=volume,
                volume_source=source,
                reasons=reasons,
                workflow_group=procedure.workflow_group,
                workflow_peers=sorted(peer.code for peer in peers),
                workflow_has_level4=any(peer.level == 4 for peer in peers),
            )
        )
    candidates.sort(key=lambda candidate: (-candidate.volume, candidate.code))
    return candidates


def _volume(
    procedure: Procedure, volumes: Mapping[str, int] | None
) -> tuple[int, Literal["reported", "catalogue", "unknown"]]:
    if volumes is not None and procedure.code in volumes:
        return volumes[procedure.code], "reported"
    if procedure.annual_volume is not None:
        return procedure.annual_volume, "catalogue"
    return 0, "unknown"

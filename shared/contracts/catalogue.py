"""The procedure catalogue contract: one record per procedure on the compacted catalogue topic.

Intake owns the catalogue and publishes every procedure (key = procedure code; a null value is a
tombstone for a withdrawn procedure). Processing and reporting keep their own copies from the
topic, never reading intake's database.
"""

from __future__ import annotations

from enum import StrEnum
from fractions import Fraction
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, computed_field

from shared.contracts import topics


class TimeUnit(StrEnum):
    WORKING_DAYS = "working_days"
    CALENDAR_DAYS = "calendar_days"
    WORKING_HOURS = "working_hours"
    MONTHS = "months"


class ServiceMode(StrEnum):
    """Decree 42/2022's names: full-process online (level 4), partial (level 3), or not online."""

    FULL_ONLINE = "toan_trinh"
    PARTIAL_ONLINE = "mot_phan"
    NOT_ONLINE = "khong_truc_tuyen"


class ProcessingTime(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: float = Field(gt=0)
    unit: TimeUnit
    note: str | None = Field(default=None, description="Stages or conditions, in Vietnamese")


class Fee(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    amount_vnd: int = Field(ge=0)


class RequiredDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    mandatory: bool = True
    formats: list[str] = Field(default_factory=lambda: ["pdf"], description="e.g. pdf, jpg, png")


class Procedure(BaseModel):
    """One administrative procedure (TTHC) of the Ministry."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    topic: ClassVar[str] = topics.CATALOGUE_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.catalogue.procedure.v1"

    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1)
    unit_code: str
    unit_name: str
    field: str
    level: int = Field(ge=1, le=4)
    processing_time: ProcessingTime | None = None
    fees: list[Fee] = Field(default_factory=list)
    documents: list[RequiredDocument] = Field(default_factory=list)
    specialised_inspection: bool = False
    cutoff_15h: bool = Field(
        default=False, description="Paper dossiers received after 15:00 count from the next day"
    )
    fee_starts_clock: bool = Field(
        default=False, description="The deadline counts from payment, not from receipt"
    )
    legal_basis: str = ""
    workflow_group: str | None = Field(
        default=None, description="Procedures sharing a workflow (deployable together)"
    )
    annual_volume: int | None = Field(default=None, ge=0, description="Dossiers a year, if known")
    illustrative: bool = Field(
        default=False, description="True for plausible rows completing the real data"
    )
    source: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mode(self) -> ServiceMode:
        if self.level == 4:
            return ServiceMode.FULL_ONLINE
        if self.level == 3:
            return ServiceMode.PARTIAL_ONLINE
        return ServiceMode.NOT_ONLINE

    @property
    def accepts_online(self) -> bool:
        return self.level >= 3

    @property
    def total_fee_vnd(self) -> int:
        return sum(fee.amount_vnd for fee in self.fees)


LEVEL4_TARGET_SHARE = Fraction(3, 10)
"""Decision 4094/QĐ-BKHCN: at least 30% of the online services (levels 3 and 4) at level 4."""


def level4_target_met(
    level_4: int, online: int, target: Fraction | float = LEVEL4_TARGET_SHARE
) -> bool:
    """Whether `level_4` of `online` services meets the target, compared exactly (as fractions,
    never as a rounded percentage: 77/263 = 29.28% does not meet 30%, 3/10 does); False when
    there is no online service. The one rule intake's and reporting's roll-ups apply."""
    if online <= 0:
        return False
    exact = Fraction(str(target)) if isinstance(target, float) else Fraction(target)
    return Fraction(level_4, online) >= exact

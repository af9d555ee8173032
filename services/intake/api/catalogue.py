"""Catalogue API: search and detail of procedures, units, the level roll-up, admin changes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.intake.api.dependencies import AdminStaff, Intake
from services.intake.domain.catalogue import CatalogueRollup
from shared.catalogue import Procedure
from shared.http import Problem

router = APIRouter(prefix="/api/v1", tags=["catalogue"])


class ProcedurePage(BaseModel):
    items: list[Procedure]
    next_cursor: str | None = None


@router.get("/procedures", response_model=ProcedurePage)
async def list_procedures(
    intake: Intake,
    q: Annotated[str | None, Query(max_length=200, description="Words, accents optional")] = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    level: Annotated[int | None, Query(ge=1, le=4)] = None,
    field: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[
        str | None, Query(max_length=40, description="next_cursor of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ProcedurePage:
    """Search the catalogue: `q=chuyen giao cong nghe` finds "chuyển giao công nghệ"."""
    items, next_cursor = await intake.catalogue.search(
        q or "", unit_code=unit, level=level, field=field, after=cursor, limit=limit
    )
    return ProcedurePage(items=list(items), next_cursor=next_cursor)


@router.get("/procedures/{code}", response_model=Procedure)
async def get_procedure(code: str, intake: Intake) -> Procedure:
    return await intake.catalogue.procedure(code)


@router.get("/units")
async def list_units(intake: Intake) -> list[dict[str, Any]]:
    return await intake.catalogue.units()


@router.get("/catalogue/rollup", response_model=CatalogueRollup)
async def catalogue_rollup(
    intake: Intake,
    large_volume: Annotated[
        int, Query(ge=1, description="Dossiers a year that count as large")
    ] = 500,
) -> CatalogueRollup:
    """Counts by level per unit and overall, the level-4 share of online services against the
    decision's 30% target, and level-3 procedures that are candidates to move up."""
    return await intake.catalogue.rollup(large_volume)


@router.put("/admin/procedures/{code}", response_model=Procedure, tags=["admin"])
async def put_procedure(
    code: str, procedure: Procedure, intake: Intake, staff: AdminStaff
) -> Procedure:
    """Create or change a procedure (admins); the change is published on the catalogue topic."""
    if procedure.code != code:
        raise Problem(
            422, "Mã thủ tục không khớp (code mismatch)", "The body's code must equal the path's."
        )
    await intake.catalogue.save(procedure)
    return procedure

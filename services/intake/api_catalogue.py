"""Catalogue API: search and detail of procedures, units, the level roll-up, admin changes."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from services.intake.domain.catalogue import CatalogueRollup, query_terms, rollup
from services.intake.runtime import Runtime
from shared.auth import Role, Staff, require_roles
from shared.catalogue import Procedure
from shared.http import Problem

router = APIRouter(prefix="/api/v1", tags=["catalogue"])


class ProcedurePage(BaseModel):
    items: list[Procedure]
    next_cursor: str | None = None


@router.get("/procedures", response_model=ProcedurePage)
async def list_procedures(
    runtime: Runtime,
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
    items = await runtime.store.search_procedures(
        terms=query_terms(q or ""),
        unit_code=unit,
        level=level,
        field=field,
        after=cursor,
        limit=limit + 1,
    )
    next_cursor = items[limit - 1].code if len(items) > limit else None
    return ProcedurePage(items=items[:limit], next_cursor=next_cursor)


@router.get("/procedures/{code}", response_model=Procedure)
async def get_procedure(code: str, runtime: Runtime) -> Procedure:
    procedure = await runtime.store.get_procedure(code)
    if procedure is None:
        raise Problem(
            404, "Không tìm thấy thủ tục (procedure not found)", f"No procedure {code!r}."
        )
    return procedure


@router.get("/units")
async def list_units(runtime: Runtime) -> list[dict]:
    return [
        {k: v for k, v in unit.items() if k != "_id"} for unit in await runtime.store.list_units()
    ]


@router.get("/catalogue/rollup", response_model=CatalogueRollup)
async def catalogue_rollup(
    runtime: Runtime,
    large_volume: Annotated[
        int, Query(ge=1, description="Dossiers a year that count as large")
    ] = 500,
) -> CatalogueRollup:
    """Counts by level per unit and overall, the level-4 share of online services against the
    decision's 30% target, and level-3 procedures that are candidates to move up."""
    procedures = await runtime.store.all_procedures()
    return rollup(procedures, large_volume_threshold=large_volume)


AdminStaff = Annotated[Staff, Depends(require_roles(Role.admin))]


@router.put("/admin/procedures/{code}", response_model=Procedure, tags=["admin"])
async def put_procedure(
    code: str, procedure: Procedure, runtime: Runtime, staff: AdminStaff
) -> Procedure:
    """Create or change a procedure (admins); the change is published on the catalogue topic."""
    if procedure.code != code:
        raise Problem(
            422, "Mã thủ tục không khớp (code mismatch)", "The body's code must equal the path's."
        )
    await runtime.store.save_procedures([procedure])
    try:
        await runtime.catalogue.publish_changes()
    except Exception:  # stored: the periodic pass publishes it once the broker is back
        logging.getLogger(__name__).warning("catalogue change stored, publication deferred")
    return procedure

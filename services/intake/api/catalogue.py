"""Catalogue API: search and detail of procedures, units, the level roll-up, admin changes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from services.intake.api.dependencies import AdminStaff, Intake
from services.intake.domain.catalogue import CatalogueRollup
from shared.contracts.catalogue import Procedure
from shared.runtime.http import Problem, inline_schema, problems

router = APIRouter(prefix="/api/v1", tags=["catalogue"], responses=problems(503))
ProcedureCode = Annotated[str, Path(min_length=1, max_length=40)]


class ProcedurePage(BaseModel):
    items: list[Procedure]
    next_cursor: str | None = None


@router.get("/procedures", response_model=ProcedurePage, responses=problems(422))
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


@router.get("/procedures/{code}", response_model=Procedure, responses=problems(404, 422))
async def get_procedure(code: ProcedureCode, intake: Intake) -> Procedure:
    return await intake.catalogue.procedure(code)


@router.get("/units")
async def list_units(intake: Intake) -> list[dict[str, Any]]:
    return await intake.catalogue.units()


@router.get("/catalogue/rollup", response_model=CatalogueRollup, responses=problems(422))
async def catalogue_rollup(
    intake: Intake,
    large_volume: Annotated[
        int, Query(ge=1, description="Dossiers a year that count as large")
    ] = 500,
) -> CatalogueRollup:
    """Counts by level per unit and overall, the level-4 share of online services against the
    decision's 30% target, and level-3 procedures that are candidates to move up."""
    return await intake.catalogue.rollup(large_volume)


async def strict_procedure(request: Request) -> Procedure:
    """The body read as JSON without lenient coercion (`"illustrative": 0` is no boolean): the
    document's `Procedure` schema, exactly."""
    try:
        return Procedure.model_validate_json(await request.body(), strict=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


@router.put(
    "/admin/procedures/{code}",
    response_model=Procedure,
    tags=["admin"],
    responses=problems(
        401, 403, 413, 422, notes={422: "Or the body's `code` is not the path's `code`"}
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(Procedure)}},
        }
    },
)
async def put_procedure(
    code: ProcedureCode,
    intake: Intake,
    staff: AdminStaff,
    procedure: Annotated[Procedure, Depends(strict_procedure)],
) -> Procedure:
    """Create or change a procedure (admins); the change is published on the catalogue topic.
    The body's `code` must equal the path's `code` (422 otherwise)."""
    if procedure.code != code:
        raise Problem(
            422, "Mã thủ tục không khớp (code mismatch)", "The body's code must equal the path's."
        )
    await intake.catalogue.save(procedure)
    return procedure

"""Catalogue API: search and detail of procedures, units, the level roll-up, admin changes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from services.intake.api.dependencies import AdminStaff, Intake
from services.intake.domain.catalogue import CatalogueRollup
from services.intake.service.catalogue import ProcedureChanged, VersionRequired
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


ETAG_HEADER = {
    "ETag": {
        "description": "The procedure's version (a strong entity tag): send it back as "
        "`If-Match` to change the procedure (`PUT /api/v1/admin/procedures/{code}`)",
        "schema": {"type": "string"},
    }
}


def entity_tag(version: str) -> str:
    return f'"{version}"'


def if_match_versions(header: str | None) -> list[str] | None:
    """The versions an `If-Match` header names (RFC 9110 §13.1.1: strong comparison, so weak
    tags name none), `*` kept; None without the header."""
    if header is None:
        return None
    versions = []
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            versions.append("*")
        elif len(tag) >= 2 and tag[0] == tag[-1] == '"':
            versions.append(tag[1:-1])
    return versions


@router.get(
    "/procedures/{code}",
    response_model=Procedure,
    responses={**problems(404, 422), 200: {"headers": ETAG_HEADER}},
)
async def get_procedure(code: ProcedureCode, intake: Intake, response: Response) -> Procedure:
    """The procedure, with its version in `ETag` (what an administrator's change starts from)."""
    procedure, version = await intake.catalogue.procedure_version(code)
    response.headers["ETag"] = entity_tag(version)
    return procedure


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
    responses={
        **problems(
            401, 403, 413, 422, notes={422: "Or the body's `code` is not the path's `code`"}
        ),
        200: {"headers": ETAG_HEADER},
        412: {
            **problems(409)[409],
            "description": "`If-Match` does not name the stored version: another change was "
            "saved since the procedure was read (or it does not exist). Nothing was stored; "
            "`ETag` is the version now stored",
        },
        428: {
            **problems(409)[409],
            "description": "The procedure exists and `If-Match` is missing: say which version "
            "the change was made from (its `ETag`)",
        },
    },
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
    response: Response,
    if_match: Annotated[
        str | None,
        Header(
            max_length=1000,
            description="The `ETag` of the procedure as read (`GET /api/v1/procedures/{code}`): "
            "the change is stored only if nobody changed it since (412 otherwise). Required to "
            "change an existing procedure (428 without it); leave it out to create one.",
        ),
    ] = None,
) -> Procedure:
    """Create or change a procedure (admins); the change is published on the catalogue topic.
    The body's `code` must equal the path's `code` (422 otherwise). Two administrators editing
    the same procedure do not overwrite each other: a change names the version it was made from
    (`If-Match`) and is refused with 412 if another was saved meanwhile."""
    if procedure.code != code:
        raise Problem(
            422, "Mã thủ tục không khớp (code mismatch)", "The body's code must equal the path's."
        )
    try:
        version = await intake.catalogue.save(procedure, if_match_versions(if_match))
    except VersionRequired as required:
        raise Problem(
            428,
            "Thiếu phiên bản của thủ tục (If-Match required)",
            "Send the procedure's ETag as If-Match: the version this change was made from.",
            headers={"ETag": entity_tag(required.current)},
        ) from None
    except ProcedureChanged as changed:
        raise Problem(
            412,
            "Thủ tục đã được thay đổi bởi người khác (procedure changed meanwhile)",
            "Another change was saved after this one's version was read; nothing was stored. "
            "Read the procedure again and reapply the change.",
            headers={"ETag": entity_tag(changed.current)} if changed.current else None,
        ) from None
    response.headers["ETag"] = entity_tag(version)
    return procedure

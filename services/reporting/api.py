"""The reports API: the quarterly report in JSON, CSV or a printable HTML page (unit heads and
admins), and the public year-to-date figures in JSON or CSV (anyone, aggregates only)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.reporting.domain.errors import InvalidPeriod, NotAllowed
from services.reporting.domain.indicators import INDICATOR_FORMULAS, LEVEL4_FORMULA
from services.reporting.domain.public_figures import PublicFigures
from services.reporting.domain.public_figures import to_csv as public_csv
from services.reporting.domain.report import QuarterlyReport
from services.reporting.render import to_csv, to_html
from services.reporting.service import ReportingService
from shared.runtime.auth import Role, Staff, require_roles
from shared.runtime.http import Problem, StrictDate, content_disposition, problems

PERIOD_RULE = (
    "The period is `year` with `quarter`, or `from` with `to` (at most ten years, `to` not "
    "before `from`), never a mix: anything else is refused (422)"
)
router = APIRouter(
    prefix="/api/v1/reports",
    tags=["reports"],
    responses=problems(
        401,
        403,
        422,
        503,
        notes={403: "Or a unit head asks for another unit", 422: PERIOD_RULE},
    ),
)
public_router = APIRouter(
    prefix="/api/v1/public", tags=["public figures"], responses=problems(422, 503)
)
# Public figures change slowly and are the same for everyone: shared caches may keep them.
PUBLIC_CACHE = "public, max-age=300"
Reader = Annotated[Staff, Depends(require_roles(Role.unit_head, Role.admin, action="reports"))]
Format = Literal["json", "csv", "html"]

_FORMULAS_DOC = "\n".join(f"- `{code}` = {formula}" for code, formula in INDICATOR_FORMULAS.items())
DESCRIPTION = f"""The decision's quarterly report: progress and results per unit and ministry-wide,
the catalogue roll-up and the indicators of Decision 766 (percentages).

Period: `year` and `quarter`, or a date range `from`..`to` (at most ten years) rolled into the
whole quarters it touches (quarters in Viet Nam time); one of the two pairs, complete, and not
both. Unit heads see their own unit; admins see every unit (or one,
with `unit`). Formats: `format=json` (default), `csv`, `html` (printable, for leadership).

Indicators:
{_FORMULAS_DOC}
- level-4 share = {LEVEL4_FORMULA}
"""


async def reporting_service(request: Request) -> ReportingService:
    """The service layer `main.create_app` put on the app."""
    reporting: ReportingService = request.app.state.reporting_service
    return reporting


Reporting = Annotated[ReportingService, Depends(reporting_service)]


async def _report(
    reporting: ReportingService,
    staff: Staff,
    year: int | None,
    quarter: int | None,
    start: date | None,
    end: date | None,
    unit: str | None,
) -> QuarterlyReport:
    try:
        return await reporting.quarterly_report(
            staff, year=year, quarter=quarter, start=start, end=end, unit=unit
        )
    except InvalidPeriod as error:
        raise Problem(422, "Kỳ báo cáo không hợp lệ (invalid period)", error.detail) from None
    except NotAllowed as error:
        raise Problem(403, "Không có quyền (forbidden)", error.detail) from None


def _respond(report: QuarterlyReport, fmt: Format) -> Response | QuarterlyReport:
    name = f"bao-cao-{'_'.join(report.quarters[:1] + report.quarters[-1:])}-{report.scope}"
    if fmt == "csv":
        return Response(
            to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": content_disposition(f"{name}.csv")},
        )
    if fmt == "html":
        return HTMLResponse(to_html(report))
    return report


Year = Annotated[
    int | None, Query(ge=2000, le=2100, description="With `quarter` (not with `from`, `to`)")
]
QuarterQ = Annotated[
    int | None, Query(ge=1, le=4, description="With `year` (not with `from`, `to`)")
]
From = Annotated[
    StrictDate | None,
    Query(alias="from", description="With `to` (not with `year`, `quarter`)"),
]
To = Annotated[
    StrictDate | None,
    Query(alias="to", description="With `from`, not before it (not with `year`, `quarter`)"),
]
Unit = Annotated[str | None, Query(max_length=40, description="Admins only: one unit")]
TEXT: dict[str, Any] = {"schema": {"type": "string"}}
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The report as CSV", "content": {"text/csv": TEXT}}
}


@router.get(
    "/quarterly",
    response_model=QuarterlyReport,
    summary="Quarterly report (JSON, CSV or HTML)",
    description=DESCRIPTION,
    responses={200: {"content": {"text/csv": TEXT, "text/html": TEXT}}},
)
async def quarterly(
    staff: Reader,
    reporting: Reporting,
    year: Year = None,
    quarter: QuarterQ = None,
    start: From = None,
    end: To = None,
    unit: Unit = None,
    format: Format = "json",
) -> Response | QuarterlyReport:
    return _respond(await _report(reporting, staff, year, quarter, start, end, unit), format)


@router.get(
    "/quarterly.csv",
    summary="Quarterly report as CSV",
    description=DESCRIPTION,
    response_class=Response,
    responses=CSV_RESPONSE,
)
async def quarterly_csv(
    staff: Reader,
    reporting: Reporting,
    year: Year = None,
    quarter: QuarterQ = None,
    start: From = None,
    end: To = None,
    unit: Unit = None,
) -> Response:
    report = await _report(reporting, staff, year, quarter, start, end, unit)
    return _respond(report, "csv")  # type: ignore[return-value]


@router.get(
    "/quarterly.html",
    summary="Quarterly report for leadership (printable HTML)",
    description=DESCRIPTION,
    response_class=HTMLResponse,
)
async def quarterly_html(
    staff: Reader,
    reporting: Reporting,
    year: Year = None,
    quarter: QuarterQ = None,
    start: From = None,
    end: To = None,
    unit: Unit = None,
) -> Response:
    report = await _report(reporting, staff, year, quarter, start, end, unit)
    return _respond(report, "html")  # type: ignore[return-value]


PUBLIC_DESCRIPTION = """The public year-to-date figures (DOMAIN.md §1), per unit and per procedure:
dossiers received, online share, dossiers resolved, on-time share (Decision 766), level-4 share of
the online services against the 30% target, and satisfaction from the applicants' ratings.
Anonymous and aggregate only (no personal data); cacheable by shared caches for 5 minutes.
`year` defaults to the current year (Viet Nam time); a year's figures are those of its quarters up
to the current one."""

PublicYear = Annotated[int | None, Query(ge=2000, le=2100)]


@public_router.get(
    "/figures",
    response_model=PublicFigures,
    summary="Public year-to-date figures (JSON)",
    description=PUBLIC_DESCRIPTION,
)
async def public_figures(
    reporting: Reporting, response: Response, year: PublicYear = None
) -> PublicFigures:
    response.headers["Cache-Control"] = PUBLIC_CACHE
    return await reporting.public_figures(year)


@public_router.get(
    "/figures.csv",
    summary="Public year-to-date figures (CSV)",
    description=PUBLIC_DESCRIPTION,
    response_class=Response,
    responses={200: {"description": "The figures as CSV", "content": {"text/csv": TEXT}}},
)
async def public_figures_csv(reporting: Reporting, year: PublicYear = None) -> Response:
    figures = await reporting.public_figures(year)
    return Response(
        public_csv(figures),
        media_type="text/csv; charset=utf-8",
        headers={
            "Cache-Control": PUBLIC_CACHE,
            "Content-Disposition": content_disposition(f"so-lieu-cong-khai-{figures.year}.csv"),
        },
    )

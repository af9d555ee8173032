"""The public year-to-date figures (DOMAIN.md §1): a page of accessible charts (inline SVG with
their text equivalents) and a table, and the same figures as open data at stable URLs:

- `/so-lieu` (the current year) and `/so-lieu?nam=YYYY`: the page;
- `/so-lieu/YYYY.json` and `/so-lieu/YYYY.csv`: the open data, as reporting's public API gives
  them (`GET /api/v1/public/figures[.csv]?year=YYYY`), cacheable by anyone.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.portal.api.dependencies import Portal, PortalWeb
from services.portal.domain.errors import FiguresUnavailable, NotFound
from services.portal.domain.figures import available_years, unit_charts

router = APIRouter(include_in_schema=False)

FIRST_YEAR = 2019
OPEN_DATA_CACHE = "public, max-age=300"
UNAVAILABLE = (
    "Số liệu thống kê tạm thời chưa hiển thị được. Vui lòng thử lại sau ít phút. "
    "Các dịch vụ nộp và tra cứu hồ sơ vẫn hoạt động bình thường."
)


def _year(value: str) -> int | None:
    """The chosen year, None for the current one; NotFound for anything else."""
    if not value:
        return None
    if not value.isdigit() or not FIRST_YEAR <= int(value) <= 2100:
        raise NotFound(value)
    return int(value)


def _unavailable(request: Request, portal: PortalWeb) -> Response:
    response = portal.render(
        request,
        "error.html",
        {"title": "Số liệu tạm thời gián đoạn", "message": UNAVAILABLE},
        status_code=503,
    )
    response.headers["Retry-After"] = "60"
    return response


@router.get("/so-lieu")
async def figures_page(
    request: Request, portal: Portal, nam: Annotated[str, Query(max_length=4)] = ""
) -> Response:
    try:
        figures = await portal.service.figures(_year(nam))
    except FiguresUnavailable:
        return _unavailable(request, portal)
    return portal.render(
        request,
        "figures.html",
        {
            "figures": figures,
            "charts": unit_charts(figures),
            "years": [y for y in available_years(figures.as_of, FIRST_YEAR)],
        },
    )


@router.get("/so-lieu/{year}.json")
async def figures_json(request: Request, year: str, portal: Portal) -> Response:
    return await _open_data(request, portal, year, "json")


@router.get("/so-lieu/{year}.csv")
async def figures_csv(request: Request, year: str, portal: Portal) -> Response:
    return await _open_data(request, portal, year, "csv")


async def _open_data(request: Request, portal: PortalWeb, year: str, kind: str) -> Response:
    chosen = _year(year)
    if chosen is None:
        raise NotFound(year)
    try:
        data = await portal.service.open_data(chosen, kind)
    except FiguresUnavailable:
        return _unavailable(request, portal)
    media_type = "text/csv; charset=utf-8" if kind == "csv" else "application/json"
    name = f"so-lieu-cong-khai-{chosen}.{kind}"
    return Response(
        data.content,
        media_type=media_type,
        headers={
            "Cache-Control": OPEN_DATA_CACHE,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Access-Control-Allow-Origin": "*",
        },
    )

"""Home, catalogue search and procedure pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.portal.api.dependencies import Client, Portal
from services.portal.domain.labels import LEVEL_DESCRIPTIONS, accepts_online, in_person_guidance
from services.portal.domain.pagination import page_number
from services.portal.service import CatalogueFilters

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request, portal: Portal, client: Client) -> Response:
    units = await portal.service.units(client)
    return portal.render(
        request,
        "home.html",
        {"units": units, "levels": LEVEL_DESCRIPTIONS},
    )


@router.get("/thu-tuc")
async def catalogue(
    request: Request,
    portal: Portal,
    client: Client,
    q: Annotated[str, Query(max_length=200)] = "",
    unit: Annotated[str, Query(max_length=40)] = "",
    level: Annotated[str, Query(max_length=2)] = "",
    field: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[str, Query(max_length=5)] = "",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    filters = CatalogueFilters(
        query=" ".join(q.split()),
        unit=unit or None,
        level=int(level) if level in {"1", "2", "3", "4"} else None,
        field=field or None,
    )
    units = await portal.service.units(client)
    fields = await portal.service.fields(client)
    result = await portal.service.search(
        filters, page=page_number(page), cursor=after or None, client=client
    )
    return portal.render(
        request,
        "catalogue.html",
        {
            "filters": filters,
            "units": units,
            "fields": fields,
            "levels": LEVEL_DESCRIPTIONS,
            "result": result,
        },
    )


@router.get("/thu-tuc/{code}")
async def procedure(request: Request, code: str, portal: Portal, client: Client) -> Response:
    found = await portal.service.procedure(code, client)
    return portal.render(
        request,
        "procedure.html",
        {
            "procedure": found,
            "online": accepts_online(found.level),
            "in_person": in_person_guidance(found),
            "level_description": LEVEL_DESCRIPTIONS.get(found.level, ""),
            "max_file_bytes": portal.settings.max_file_bytes,
        },
    )

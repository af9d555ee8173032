"""The portal's only composition root: settings -> intake and reporting clients -> service ->
pages; and the officers' workspace (`services.portal.workspace`: sign-in at the provider, pages
calling processing with the officer's token).

The portal has no broker and no database (so not `shared.runtime.service.build_service_app`, which
connects both): a small FastAPI app with the platform's health, metrics and logging conventions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.portal.adapters.intake import IntakeClient
from services.portal.adapters.reporting import ReportingClient
from services.portal.api import routers
from services.portal.api.dependencies import PortalWeb
from services.portal.api.errors import install_error_pages
from services.portal.api.security import Cookies, SecurityHeaders, parse_networks
from services.portal.domain import figures, labels
from services.portal.service import PortalService
from services.portal.settings import PortalSettings
from services.portal.workspace import install_workspace
from shared.runtime.http import RequestMetricsMiddleware, install_operational_routes

HERE = Path(__file__).resolve().parent


def templates() -> Jinja2Templates:
    environment = Jinja2Templates(directory=HERE / "templates")
    filters: dict[str, Any] = {
        "money": labels.money_text,
        "size": labels.size_text,
        "date": labels.date_text,
        "datetime": labels.datetime_text,
        "formats": labels.formats_text,
        "accept": labels.accept_attribute,
        "level_label": labels.level_label,
        "processing_time": labels.processing_time_text,
        "percent": figures.percent_text,
        "score": figures.score_text,
    }
    environment.env.filters.update(filters)
    environment.env.globals["state_labels"] = labels.STATE_LABELS
    return environment


def create_app(
    settings: PortalSettings | None = None,
    *,
    intake_transport: Any = None,
    reporting_transport: Any = None,
    processing_transport: Any = None,
    provider_transport: Any = None,
) -> FastAPI:
    settings = settings or PortalSettings()
    intake = IntakeClient(
        settings.intake_base_url,
        timeout=settings.intake_timeout_seconds,
        upload_timeout=settings.intake_upload_timeout_seconds,
        transport=intake_transport,
    )
    reporting = ReportingClient(
        settings.reporting_base_url,
        timeout=settings.reporting_timeout_seconds,
        transport=reporting_transport,
    )
    service = PortalService(
        intake,
        reporting,
        cache_seconds=settings.catalogue_cache_seconds,
        figures_cache_seconds=settings.figures_cache_seconds,
    )
    portal = PortalWeb(
        settings=settings,
        service=service,
        cookies=Cookies(settings.secret_key.get_secret_value(), secure=settings.cookie_secure),
        templates=templates(),
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await intake.close()
            await reporting.close()
            await processing.close()

    app = FastAPI(
        title="Cổng dịch vụ công",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.portal = portal
    app.state.service_name = settings.service_name
    install_error_pages(app)
    install_operational_routes(app, {"intake": intake.ready})
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in routers:
        app.include_router(router)
    processing = install_workspace(
        app,
        settings,
        portal,
        processing_transport=processing_transport,
        provider_transport=provider_transport,
    )
    app.add_middleware(RequestMetricsMiddleware, service=settings.service_name)
    app.add_middleware(SecurityHeaders, hsts=settings.cookie_secure)
    return app

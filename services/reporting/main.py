"""Composition root of the reporting service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.reporting import api, handlers
from services.reporting.metrics import BUSINESS, snapshot_of
from services.reporting.settings import ReportingSettings
from services.reporting.store import ActiveStore, ReportingStore
from shared.service import ServiceContext, build_service_app

log = logging.getLogger(__name__)


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()

    def register(context: ServiceContext) -> None:
        # Follows the read-model pointer, so a rebuild's swap reaches consumer and API.
        store = ActiveStore(context.db)
        context.extras["store"] = store
        handlers.register(context, store)

    app = build_service_app(
        settings,
        title="Reporting (báo cáo thống kê)",
        register=register,
        routers=[api.router],
        hooks=[refresh_metrics],
    )
    app.state.reporting_store = app.state.context.extras["store"]
    return app


async def refresh_once(store: ReportingStore) -> None:
    BUSINESS.snapshot = snapshot_of(await store.all_counters(), await store.all_procedures())


@asynccontextmanager
async def refresh_metrics(context: ServiceContext) -> AsyncIterator[None]:
    store: ReportingStore = context.extras["store"]
    interval = getattr(context.settings, "metrics_refresh_seconds", 30.0)

    async def loop() -> None:
        while True:
            try:
                await refresh_once(store)
            except Exception:
                log.exception("business metrics refresh failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="reporting-metrics-refresh")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""Composition root of the reporting service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.reporting import api, handlers
from services.reporting.lag import LagReader
from services.reporting.metrics import BUSINESS, CONSUMER_LAG, snapshot_of
from services.reporting.settings import ReportingSettings
from services.reporting.store import ActiveStore, ReportingStore
from shared.service import ServiceContext, build_service_app
from shared.topics import SUBSCRIPTIONS

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
        hooks=[prepare_store, refresh_metrics],
    )
    app.state.reporting_store = app.state.context.extras["store"]
    return app


@asynccontextmanager
async def prepare_store(context: ServiceContext) -> AsyncIterator[None]:
    """The indexes of the active read-model set (a rebuild makes those of the set it builds)."""
    store: ReportingStore = context.extras["store"]
    await store.ensure_indexes()
    yield


async def refresh_once(store: ReportingStore) -> None:
    BUSINESS.snapshot = snapshot_of(await store.all_counters(), await store.all_procedures())


@asynccontextmanager
async def refresh_metrics(context: ServiceContext) -> AsyncIterator[None]:
    """The business gauges and the consumer lag of every platform group, recomputed when
    `/metrics` is read and they are older than `metrics_refresh_seconds` (nothing while nobody
    scrapes). The lag reader keeps its Kafka connections between scrapes."""
    store: ReportingStore = context.extras["store"]
    settings = context.settings
    every = getattr(settings, "metrics_refresh_seconds", 30.0)
    groups = [settings.consumer_group(group) for group in SUBSCRIPTIONS]
    reader = LagReader(settings)

    async def refresh_lag() -> None:
        lag = await reader.lag(groups)
        CONSUMER_LAG.clear()
        for (group, topic), messages in lag.items():
            CONSUMER_LAG.labels(group, topic).set(messages)

    try:
        async with (
            context.metrics_source("business gauges", lambda: refresh_once(store), every),
            context.metrics_source("consumer lag", refresh_lag, every),
        ):
            yield
    finally:
        await reader.close()

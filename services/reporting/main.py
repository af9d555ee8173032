"""Composition root of the reporting service: settings -> read-model store (following the
rebuild's pointer) -> service layer -> subscribers, routes and lifecycle hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from services.reporting import api, handlers
from services.reporting.adapters.lag import LagReader
from services.reporting.adapters.store import ActiveStore
from services.reporting.metrics import BUSINESS, CONSUMER_COMMITTED, CONSUMER_LAG
from services.reporting.service import ReportingService
from services.reporting.settings import ReportingSettings
from shared.contracts.topics import SUBSCRIPTIONS
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.service import ServiceContext, build_service_app


@dataclass(frozen=True)
class ReportingParts:
    """The service's parts, built once the database handle exists."""

    settings: ReportingSettings
    # Follows the read-model pointer, so a rebuild's swap reaches consumer and API.
    store: ActiveStore
    service: ReportingService
    lag: LagReader
    consumer: BatchConsumer

    @classmethod
    def build(cls, settings: ReportingSettings, context: ServiceContext) -> ReportingParts:
        store = ActiveStore(context.db)
        service = ReportingService(store)
        consumer = handlers.consumer(context, service)
        return cls(settings, store, service, LagReader(settings), consumer)


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    built: ReportingParts | None = None

    def register(context: ServiceContext) -> None:
        nonlocal built
        built = ReportingParts.build(settings, context)

    def parts() -> ReportingParts:
        assert built is not None, "build_service_app registers before anything else runs"
        return built

    def store_hook(context: ServiceContext) -> AbstractAsyncContextManager[None]:
        return prepare_store(parts())

    def metrics_hook(context: ServiceContext) -> AbstractAsyncContextManager[None]:
        return refresh_metrics(parts(), context)

    def consumer_hook(context: ServiceContext) -> AbstractAsyncContextManager[None]:
        return parts().consumer.running()  # after the store's indexes exist

    app = build_service_app(
        settings,
        title="Reporting (báo cáo thống kê)",
        register=register,
        routers=[api.router, api.public_router],
        hooks=[store_hook, metrics_hook, consumer_hook],
    )
    app.state.reporting_service = parts().service
    return app


@asynccontextmanager
async def prepare_store(reporting: ReportingParts) -> AsyncIterator[None]:
    """The indexes of the active read-model set (a rebuild makes those of the set it builds)."""
    await reporting.store.ensure_indexes()
    yield


@asynccontextmanager
async def refresh_metrics(
    reporting: ReportingParts, context: ServiceContext
) -> AsyncIterator[None]:
    """The business gauges and the consumer lag of every platform group, recomputed when
    `/metrics` is read and they are older than `metrics_refresh_seconds` (nothing while nobody
    scrapes). The lag reader keeps its Kafka connections between scrapes."""
    settings = reporting.settings
    groups = [settings.consumer_group(group) for group in SUBSCRIPTIONS]

    async def refresh_business() -> None:
        BUSINESS.snapshot = await reporting.service.business_snapshot()

    async def refresh_lag() -> None:
        lag, committed = await reporting.lag.offsets(groups)
        CONSUMER_LAG.clear()
        CONSUMER_COMMITTED.clear()
        for (group, topic), messages in lag.items():
            CONSUMER_LAG.labels(group, topic).set(messages)
            CONSUMER_COMMITTED.labels(group, topic).set(committed[group, topic])

    every = settings.metrics_refresh_seconds
    try:
        async with (
            context.metrics_source("business gauges", refresh_business, every),
            context.metrics_source("consumer lag", refresh_lag, every),
        ):
            yield
    finally:
        await reporting.lag.close()

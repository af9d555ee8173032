"""Composition root of the processing service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from gridfs import AsyncGridFSBucket

from services.processing import api, handlers, metrics
from services.processing.runtime import ProcessingRuntime
from services.processing.scanner import DeadlineScanner
from services.processing.settings import ProcessingSettings
from services.processing.store import RESULTS_BUCKET, CaseStore
from shared.background import periodically
from shared.outbox import OutboxRelay
from shared.service import ServiceContext, build_service_app
from shared.topics import DOSSIER_PROCESSED_TOPIC

log = logging.getLogger(__name__)
KEY = "processing"


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    built: list[ProcessingRuntime] = []

    def register(context: ServiceContext) -> None:
        runtime = build_runtime(settings, context)
        context.extras[KEY] = runtime
        handlers.register(context, runtime)
        built.append(runtime)

    app = build_service_app(
        settings,
        title="Processing (xử lý hồ sơ)",
        register=register,
        routers=[api.router],
        hooks=[prepare_store, run_relay, run_scanner, run_refresher],
    )
    app.state.processing = built[0]
    return app


def build_runtime(settings: ProcessingSettings, context: ServiceContext) -> ProcessingRuntime:
    store = CaseStore(
        context.db,
        processed_topic=settings.topic(DOSSIER_PROCESSED_TOPIC),
        source=settings.event_source,
    )
    relay = OutboxRelay(
        store.cases,
        context.broker,
        poll_interval=settings.outbox_poll_seconds,
        max_poll_interval=settings.idle_poll_max_seconds,
    )
    return ProcessingRuntime(
        settings=settings,
        store=store,
        relay=relay,
        results=AsyncGridFSBucket(context.db, bucket_name=RESULTS_BUCKET),
    )


def _runtime(context: ServiceContext) -> ProcessingRuntime:
    return context.extras[KEY]  # type: ignore[no-any-return]


@asynccontextmanager
async def prepare_store(context: ServiceContext) -> AsyncIterator[None]:
    runtime = _runtime(context)
    await runtime.store.ensure_indexes()
    await runtime.reload_calendar()
    yield


@asynccontextmanager
async def run_relay(context: ServiceContext) -> AsyncIterator[None]:
    relay = _runtime(context).relay
    relay.start()
    try:
        yield
    finally:
        await relay.stop()  # publishes what is pending before the broker stops


@asynccontextmanager
async def run_scanner(context: ServiceContext) -> AsyncIterator[None]:
    runtime = _runtime(context)
    if not runtime.settings.scanner_enabled:
        yield
        return
    scanner = DeadlineScanner(runtime)
    try:
        # Until the earliest next check (see `scanner.py`), woken by cases written here.
        async with periodically("deadline-scanner", runtime.deadline_checks, scanner.scan_once):
            yield
    finally:
        await scanner.release()


async def refresh_gauges(runtime: ProcessingRuntime) -> None:
    """Cases by unit and state, overdue cases by unit (a query each, off the request path)."""
    counts = await runtime.store.counts_by_unit_and_state()
    overdue = await runtime.store.overdue_by_unit(datetime.now(UTC))
    metrics.CASES.clear()
    for (unit, state), n in counts.items():
        metrics.CASES.labels(unit, str(state)).set(n)
    metrics.OVERDUE_CASES.clear()
    for unit, n in overdue.items():
        metrics.OVERDUE_CASES.labels(unit).set(n)


@asynccontextmanager
async def run_refresher(context: ServiceContext) -> AsyncIterator[None]:
    """Gauges, recomputed when `/metrics` is read and they are older than
    `metrics_refresh_seconds`; and the administrators' calendar changes made through other
    replicas, every `calendar_refresh_seconds`."""
    runtime = _runtime(context)
    settings = runtime.settings
    async with (
        context.metrics_source(
            "processing gauges", lambda: refresh_gauges(runtime), settings.metrics_refresh_seconds
        ),
        periodically(
            "calendar-refresher", settings.calendar_refresh_seconds, runtime.reload_calendar
        ),
    ):
        yield

"""Composition root of the processing service: settings → adapters → service layer → routes,
subscribers and lifecycle hooks.

`create_app` builds one `Processing` (everything wired, typed) when the shared skeleton hands it
the database and the broker, puts it on `app.state.processing` for the routes
(`api/dependencies.py`), and gives the lifecycle hooks closures over it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from services.processing import api, handlers
from services.processing.adapters.results import ResultStore
from services.processing.adapters.staff import StaffStore
from services.processing.adapters.store import CaseStore
from services.processing.service.cases import ProcessingService
from services.processing.service.results import ResultDocuments
from services.processing.service.scanner import DeadlineScanner
from services.processing.service.staff import StaffDirectory
from services.processing.settings import ProcessingSettings
from shared.contracts.topics import DOSSIER_PROCESSED_TOPIC
from shared.runtime.background import periodically
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.outbox import OutboxRelay
from shared.runtime.service import LifecycleHook, ServiceContext, build_service_app


@dataclass(frozen=True)
class Processing:
    """The processing service's adapters and service layer, built once per app."""

    settings: ProcessingSettings
    store: CaseStore
    relay: OutboxRelay
    service: ProcessingService
    results: ResultDocuments
    staff: StaffDirectory  # who has called the officer API (the assignment form's choices)
    consumer: BatchConsumer  # the applicants' dossier events


def build_processing(settings: ProcessingSettings, context: ServiceContext) -> Processing:
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
    service = ProcessingService(settings=settings, store=store, relay=relay)
    results = ResultDocuments(settings=settings, cases=service, results=ResultStore(context.db))
    staff = StaffDirectory(StaffStore(context.db))
    consumer = handlers.register(context, service)
    return Processing(settings, store, relay, service, results, staff, consumer)


Hook = Callable[[Processing, ServiceContext], AbstractAsyncContextManager[None]]
FORM_OVERHEAD = 64 * 1024  # bytes: the note (2,000 characters), the document type, boundaries


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    built: list[Processing] = []  # by `register`, before the app starts

    def register(context: ServiceContext) -> None:
        built.append(build_processing(settings, context))

    def hook(run: Hook) -> LifecycleHook:
        return lambda context: run(built[0], context)

    app = build_service_app(
        settings,
        title="Processing (xử lý hồ sơ)",
        register=register,
        routers=api.routers,
        hooks=[
            hook(prepare_store),
            hook(run_relay),
            hook(run_consumer),
            hook(run_scanner),
            hook(run_refresher),
        ],
        # A result document, with its form fields and the multipart framing around it.
        larger_bodies=dict.fromkeys(api.UPLOAD_ROUTES, settings.max_result_bytes + FORM_OVERHEAD),
    )
    app.state.processing = built[0]
    return app


@asynccontextmanager
async def prepare_store(processing: Processing, context: ServiceContext) -> AsyncIterator[None]:
    await processing.store.ensure_indexes()
    await processing.staff.store.ensure_indexes()
    await processing.service.reload_calendar()
    yield


@asynccontextmanager
async def run_relay(processing: Processing, context: ServiceContext) -> AsyncIterator[None]:
    processing.relay.start()
    try:
        yield
    finally:
        await processing.relay.stop()  # publishes what is pending before the broker stops


def run_consumer(
    processing: Processing, context: ServiceContext
) -> AbstractAsyncContextManager[None]:
    # After the store's indexes and the relay (it stops first: the relay publishes what the
    # last events wrote).
    return processing.consumer.running()


@asynccontextmanager
async def run_scanner(processing: Processing, context: ServiceContext) -> AsyncIterator[None]:
    if not processing.settings.scanner_enabled:
        yield
        return
    service = processing.service
    scanner = DeadlineScanner(service)
    try:
        # Until the earliest next check (see `service/scanner.py`), woken by cases written here.
        async with periodically("deadline-scanner", service.deadline_checks, scanner.scan_once):
            yield
    finally:
        await scanner.release()


@asynccontextmanager
async def run_refresher(processing: Processing, context: ServiceContext) -> AsyncIterator[None]:
    """Gauges, recomputed when `/metrics` is read and they are older than
    `metrics_refresh_seconds`; and the administrators' calendar changes made through other
    replicas, every `calendar_refresh_seconds`."""
    settings, service = processing.settings, processing.service
    async with (
        context.metrics_source(
            "processing gauges", service.refresh_gauges, settings.metrics_refresh_seconds
        ),
        periodically(
            "calendar-refresher", settings.calendar_refresh_seconds, service.reload_calendar
        ),
    ):
        yield

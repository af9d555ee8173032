"""Composition root of the intake service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.intake import api_catalogue, api_dossiers, api_payments, handlers
from services.intake.adapters import ProcessingResultDocuments
from services.intake.catalogue_publisher import CataloguePublisher
from services.intake.domain.catalogue import load_catalogue
from services.intake.domain.payments import HttpPaymentProvider
from services.intake.protection import BodySizeLimit, RateLimits
from services.intake.runtime import SOURCE, IntakeRuntime
from services.intake.settings import IntakeSettings
from services.intake.settlement import PaymentSettler
from services.intake.store import IntakeStore
from shared.auth import DevIssuer, Role
from shared.background import Pacer, periodically
from shared.outbox import OutboxRelay
from shared.service import ServiceContext, build_service_app
from shared.topics import CATALOGUE_TOPIC, DOSSIER_PAID_TOPIC

log = logging.getLogger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    built: list[IntakeRuntime] = []

    def register(context: ServiceContext) -> None:
        runtime = build_runtime(settings, context)
        context.extras["intake"] = runtime
        handlers.register(context, runtime)
        built.append(runtime)

    app = build_service_app(
        settings,
        title="Intake gateway (tiếp nhận hồ sơ)",
        register=register,
        routers=[api_catalogue.router, api_dossiers.router, api_payments.router],
        hooks=[prepare_store, run_relays, settle_payments],
    )
    app.state.intake = built[0]
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_dossier_bytes + settings.max_json_bytes
    )
    return app


def build_runtime(settings: IntakeSettings, context: ServiceContext) -> IntakeRuntime:
    store = IntakeStore(context.db)
    http = httpx.AsyncClient(timeout=10)
    context.extras["http"] = http
    dossier_relay = OutboxRelay(
        store.dossiers,
        context.broker,
        poll_interval=settings.relay_poll_seconds,
        max_poll_interval=settings.idle_poll_max_seconds,
    )
    return IntakeRuntime(
        settings=settings,
        context=context,
        store=store,
        limits=RateLimits(
            submissions_per_minute=settings.submissions_per_minute,
            tracking_per_minute=settings.tracking_per_minute,
            wrong_secrets_allowed=settings.wrong_secrets_allowed,
            wrong_secret_window_seconds=settings.wrong_secret_window_seconds,
        ),
        dossier_relay=dossier_relay,
        catalogue=CataloguePublisher(
            store, context.broker, settings.topic(CATALOGUE_TOPIC), SOURCE
        ),
        payment_provider=HttpPaymentProvider(
            settings.payment_base_url,
            settings.payment_merchant_code,
            settings.payment_request_key,
            http,
        ),
        payments=PaymentSettler(
            store,
            dossier_relay,
            topic=settings.topic(DOSSIER_PAID_TOPIC),
            source=SOURCE,
            provider=settings.payment_merchant_code,
            recovery_interval=settings.payment_recovery_seconds,
        ),
        result_documents=ProcessingResultDocuments(
            settings.processing_base_url, http, service_token(settings)
        ),
    )


def service_token(settings: IntakeSettings) -> str | None:
    """The token intake presents to processing; minted by the development issuer outside
    production."""
    if settings.processing_token or settings.environment == "production":
        return settings.processing_token
    return DevIssuer().mint("svc-intake", [Role.admin], None, name="intake", ttl_seconds=86400 * 30)


@asynccontextmanager
async def prepare_store(context: ServiceContext) -> AsyncIterator[None]:
    """Indexes, then the shipped catalogue (idempotent: unchanged procedures publish nothing)."""
    runtime: IntakeRuntime = context.extras["intake"]
    await runtime.store.ensure_indexes()
    if runtime.settings.seed_catalogue:
        units, procedures = load_catalogue()
        await runtime.store.save_units(units)
        changed = await runtime.store.save_procedures(procedures)
        log.info("catalogue seeded: %d procedures, %d changed", len(procedures), changed)
    yield


@asynccontextmanager
async def run_relays(context: ServiceContext) -> AsyncIterator[None]:
    runtime: IntakeRuntime = context.extras["intake"]
    runtime.dossier_relay.start()
    try:
        # The first pass publishes what the seeding changed; later ones retry failed passes
        # (every 30 s while they find some, backing off while they find none).
        pacer = Pacer(30, runtime.settings.idle_poll_max_seconds)
        async with periodically("catalogue-publisher", pacer, runtime.catalogue.publish_changes):
            yield
    finally:
        await runtime.dossier_relay.stop()
        await context.extras["http"].aclose()


@asynccontextmanager
async def settle_payments(context: ServiceContext) -> AsyncIterator[None]:
    """Payment callbacks answered but not completed (a crash, a failed attempt) are completed at
    start-up and every `payment_recovery_seconds`; at shutdown, running completions finish before
    the relay's last flush, the others stay recorded for the next start."""
    payments: PaymentSettler = context.extras["intake"].payments
    payments.start()
    try:
        yield
    finally:
        await payments.stop()

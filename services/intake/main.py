"""Composition root of the intake service: settings -> adapters -> service layer -> routes,
subscribers and lifecycle hooks. Nothing else builds adapters or use cases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from services.intake import api, handlers
from services.intake.adapters.catalogue_publisher import CataloguePublisher
from services.intake.adapters.payment_provider import HttpPaymentProvider
from services.intake.adapters.processing_results import ProcessingResultDocuments
from services.intake.adapters.protection import RateLimits
from services.intake.adapters.store import IntakeStore
from services.intake.service import SOURCE, IntakeService
from services.intake.service.catalogue import Catalogue
from services.intake.service.dossiers import DossierActions
from services.intake.service.payments import Payments
from services.intake.service.settlement import PaymentSettler
from services.intake.service.status import StatusView
from services.intake.service.submission import Submissions
from services.intake.settings import IntakeSettings
from shared.contracts.topics import CATALOGUE_TOPIC, DOSSIER_PAID_TOPIC
from shared.runtime.auth import DevIssuer, Role
from shared.runtime.background import Pacer, periodically
from shared.runtime.batch_consumer import BatchConsumer
from shared.runtime.outbox import OutboxRelay
from shared.runtime.service import LifecycleHook, ServiceContext, build_service_app


@dataclass(frozen=True)
class IntakeComponents:
    """Everything `create_app` builds, once: the adapters and the service layer. The app keeps
    it on `app.state.intake` (read by `services.intake.api.dependencies`)."""

    settings: IntakeSettings
    context: ServiceContext
    store: IntakeStore
    http: httpx.AsyncClient
    dossier_relay: OutboxRelay
    catalogue_publisher: CataloguePublisher
    limits: RateLimits
    service: IntakeService
    status_consumer: BatchConsumer  # processing's and notification's events, for the status view


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    built: IntakeComponents | None = None

    def register(context: ServiceContext) -> None:
        nonlocal built
        built = build_components(settings, context)

    def hook(
        part: Callable[[IntakeComponents], AbstractAsyncContextManager[Any]],
    ) -> LifecycleHook:
        def enter(context: ServiceContext) -> AbstractAsyncContextManager[Any]:
            assert built is not None
            return part(built)

        return enter

    app = build_service_app(
        settings,
        title="Intake gateway (tiếp nhận hồ sơ)",
        register=register,
        routers=api.ROUTERS,
        hooks=[
            hook(close_http_client),
            hook(prepare_store),
            hook(run_relays),
            hook(run_status_consumer),
            hook(settle),
            hook(expire_idempotency_records),
        ],
        larger_bodies=dict.fromkeys(
            api.UPLOAD_ROUTES, settings.max_dossier_bytes + settings.max_json_bytes
        ),
    )
    assert built is not None
    app.state.intake = built
    api.install_problems(app)
    return app


def build_components(settings: IntakeSettings, context: ServiceContext) -> IntakeComponents:
    store = IntakeStore(context.db, settings.procedure_cache_seconds)
    http = httpx.AsyncClient(timeout=10)
    dossier_relay = OutboxRelay(
        store.dossiers,
        context.broker,
        poll_interval=settings.relay_poll_seconds,
        max_poll_interval=settings.idle_poll_max_seconds,
    )
    publisher = CataloguePublisher(store, context.broker, settings.topic(CATALOGUE_TOPIC), SOURCE)
    settlement = PaymentSettler(
        store,
        dossier_relay,
        topic=settings.topic(DOSSIER_PAID_TOPIC),
        source=SOURCE,
        provider=settings.payment_merchant_code,
        recovery_interval=settings.payment_recovery_seconds,
    )
    payment_provider = HttpPaymentProvider(
        settings.payment_base_url,
        settings.payment_merchant_code,
        settings.payment_request_key,
        http,
    )
    result_documents = ProcessingResultDocuments(
        settings.processing_base_url, http, service_token(settings)
    )
    service = IntakeService(
        settings=settings,
        submissions=Submissions(settings, store, dossier_relay, source=SOURCE),
        dossiers=DossierActions(settings, store, dossier_relay, result_documents, source=SOURCE),
        payments=Payments(settings, store, payment_provider, settlement),
        settlement=settlement,
        catalogue=Catalogue(store, publisher),
        status=StatusView(store),
    )
    return IntakeComponents(
        settings=settings,
        context=context,
        store=store,
        http=http,
        dossier_relay=dossier_relay,
        catalogue_publisher=publisher,
        limits=RateLimits(
            submissions_per_minute=settings.submissions_per_minute,
            tracking_per_minute=settings.tracking_per_minute,
            wrong_secrets_allowed=settings.wrong_secrets_allowed,
            wrong_secret_window_seconds=settings.wrong_secret_window_seconds,
        ),
        service=service,
        status_consumer=handlers.register(context, service.status),
    )


def service_token(settings: IntakeSettings) -> str | None:
    """The token intake presents to processing: its own narrow credential (role
    `result_reader`, audience `dvc-processing`), minted by the development issuer outside
    production; in production the identity provider's (DVC_INTAKE_PROCESSING_TOKEN)."""
    if settings.processing_token or settings.environment == "production":
        return settings.processing_token
    issuer = DevIssuer(audience="dvc-processing", environment=settings.environment)
    return issuer.mint(
        "svc-intake", [Role.result_reader], None, name="intake", ttl_seconds=86400 * 30
    )


# --- Lifecycle hooks (entered in order after the broker started, exited in reverse) ------------


@asynccontextmanager
async def close_http_client(intake: IntakeComponents) -> AsyncIterator[None]:
    """The outbound HTTP client, closed after everything that uses it has stopped."""
    try:
        yield
    finally:
        await intake.http.aclose()


@asynccontextmanager
async def prepare_store(intake: IntakeComponents) -> AsyncIterator[None]:
    """Indexes, then the shipped catalogue (idempotent: unchanged procedures publish nothing)."""
    await intake.store.ensure_indexes()
    if intake.settings.seed_catalogue:
        await intake.service.catalogue.seed()
    yield


@asynccontextmanager
async def run_relays(intake: IntakeComponents) -> AsyncIterator[None]:
    intake.dossier_relay.start()
    try:
        # The first pass publishes what the seeding changed; later ones retry failed passes
        # (every 30 s while they find some, backing off while they find none).
        pacer = Pacer(30, intake.settings.idle_poll_max_seconds)
        publish = intake.catalogue_publisher.publish_changes
        async with periodically("catalogue-publisher", pacer, publish):
            yield
    finally:
        await intake.dossier_relay.stop()


def run_status_consumer(intake: IntakeComponents) -> AbstractAsyncContextManager[None]:
    """After the store's indexes; stopped before the relays."""
    return intake.status_consumer.running()


@asynccontextmanager
async def expire_idempotency_records(intake: IntakeComponents) -> AsyncIterator[None]:
    """Idempotency records are kept a day (application-side expiry: FerretDB has no TTL
    index); once an hour, those of past days are deleted."""

    async def delete_expired() -> int:
        return await intake.store.delete_expired_idempotency_records(datetime.now(UTC).date())

    async with periodically("idempotency-expiry", 3600, delete_expired):
        yield


@asynccontextmanager
async def settle(intake: IntakeComponents) -> AsyncIterator[None]:
    """Payment callbacks answered but not completed (a crash, a failed attempt) are completed at
    start-up and every `payment_recovery_seconds`; at shutdown, running completions finish before
    the relay's last flush, the others stay recorded for the next start."""
    settlement = intake.service.settlement
    settlement.start()
    try:
        yield
    finally:
        await settlement.stop()

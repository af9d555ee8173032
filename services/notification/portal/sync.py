"""The national-portal sync as the notification service wires it: event handlers that record
facts and return at once, the background worker, the metrics refresher, and resync.

Handlers (`handlers()`, for `shared.service.subscribe_dossier_events` in their own consumer group)
write the event's facts once (by event id) and mark the dossier pending: two single-document
writes, no call to the portal, so a portal outage never slows or blocks the consumer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.notification import metrics
from services.notification.domain.delivery import RetryConfig
from services.notification.portal import messages
from services.notification.portal.client import PortalClient
from services.notification.portal.settings import PortalSettings
from services.notification.portal.store import FAILED, SYNCED, PortalStore
from services.notification.portal.worker import PortalWorker
from shared.cloudevents import CloudEvent
from shared.consumer import EventHandler
from shared.events import (
    DossierEvent,
    DossierPaid,
    DossierProcessed,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.service import ServiceContext

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _fact(model: messages.Fact) -> dict[str, Any]:
    return model.model_dump(mode="python")


class PortalSync:
    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        settings: PortalSettings,
        *,
        client: PortalClient | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.store = PortalStore(db)
        self.client = client or PortalClient(
            base_url=settings.portal_url,
            username=settings.portal_username,
            password=settings.portal_password.get_secret_value(),
            timeout=settings.portal_timeout_seconds,
            session_margin=settings.portal_session_margin_seconds,
        )
        # The service's idle cap (`shared.settings.ServiceSettings`), when the settings have it.
        idle_poll = getattr(settings, "idle_poll_max_seconds", None)
        self.worker = PortalWorker(
            self.store,
            self.client,
            RetryConfig(
                max_attempts=settings.portal_max_attempts,
                base_delay=settings.portal_backoff_seconds,
                max_delay=settings.portal_backoff_max_seconds,
                lease=settings.portal_lease_seconds,
                poll_interval=settings.portal_poll_seconds,
                workers=settings.portal_workers,
                max_poll_interval=idle_poll,
            ),
            clock=clock,
        )
        self._clock = clock

    # ------------------------------------------------------------------ event handlers

    def handlers(self) -> dict[type[DossierEvent], EventHandler]:
        return {
            DossierSubmitted: self.on_submitted,
            DossierSupplemented: self.on_supplemented,
            DossierWithdrawn: self.on_withdrawn,
            DossierPaid: self.on_paid,
            DossierProcessed: self.on_processed,
        }

    async def on_submitted(self, event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        update: dict[str, Any] = {
            "$set": {"submission": _fact(messages.submission_fact(event, cloud_event.id))}
        }
        if (step := messages.submission_step(event, cloud_event.id)) is not None:
            update["$push"] = {"steps": _fact(step)}
        await self._record(event.dossier_code, cloud_event.id, update)

    async def on_processed(self, event: DossierProcessed, cloud_event: CloudEvent) -> None:
        step = messages.step_fact(event, cloud_event.id)
        if step is None:
            return  # an internal deadline warning: nothing for the portal
        await self._record(event.dossier_code, cloud_event.id, {"$push": {"steps": _fact(step)}})

    async def on_supplemented(self, event: DossierSupplemented, cloud_event: CloudEvent) -> None:
        supply = messages.supply_fact(event, cloud_event.id)
        await self._record(
            event.dossier_code, cloud_event.id, {"$push": {"supplies": _fact(supply)}}
        )

    async def on_paid(self, event: DossierPaid, cloud_event: CloudEvent) -> None:
        payment = messages.payment_fact(event, cloud_event.id)
        await self._record(
            event.dossier_code, cloud_event.id, {"$push": {"payments": _fact(payment)}}
        )

    async def on_withdrawn(self, event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
        # The state change (7, then 8) comes as processing's steps; the request itself is kept
        # for the record and, like every event, refreshes the dossier message.
        withdrawal = messages.withdrawal_fact(event, cloud_event.id)
        await self._record(
            event.dossier_code, cloud_event.id, {"$push": {"withdrawals": _fact(withdrawal)}}
        )

    async def _record(self, code: str, event_id: str, update: dict[str, Any]) -> None:
        await self.store.record(code, event_id, update)
        # Also on a redelivery: the first delivery may have died between the two writes.
        await self.store.mark_pending(code, self._clock())
        self.worker.submit(code)

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def lifecycle(self, context: ServiceContext | None = None) -> AsyncIterator[None]:
        """The worker and the gauges (recounted when the service's `/metrics` is read, at most
        every `portal_metrics_seconds`), inside a service's lifespan (a lifecycle hook: entered
        after the broker started, exited before it stops)."""
        await self.store.ensure_indexes()
        self.worker.start()
        try:
            async with AsyncExitStack() as stack:
                if context is not None:
                    every = self.settings.portal_metrics_seconds
                    gauges = context.metrics_source("portal gauges", self.refresh_metrics, every)
                    await stack.enter_async_context(gauges)
                yield
        finally:
            await self.worker.stop()
            await self.client.close()

    async def refresh_metrics(self) -> dict[str, int]:
        counts = await self.store.counts()
        for status, count in counts.items():
            metrics.PORTAL_SYNC_DOSSIERS.labels(status).set(count)
        total = sum(counts.values())
        metrics.PORTAL_SYNC_SHARE.set(counts[SYNCED] / total if total else 1.0)
        return counts

    # ------------------------------------------------------------------ resync

    async def resync(self, codes: Iterable[str]) -> dict[str, str]:
        """Send everything the portal should hold about each dossier again, now, rebuilt from the
        stored facts. Returns each dossier's outcome: synced, pending (will be retried), failed,
        waiting (submission unknown), unknown, or busy (a worker holds it; try again)."""
        outcomes: dict[str, str] = {}
        for code in codes:
            reset = await self.store.reset_for_resync(code, self._clock())
            if reset != "reset":
                outcomes[code] = reset
                continue
            status = await self.worker.process(code)
            outcomes[code] = status or "busy"
        return outcomes

    async def resync_failed(self) -> dict[str, str]:
        return await self.resync(await self.store.codes_with_status(FAILED))

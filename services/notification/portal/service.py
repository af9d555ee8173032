"""The national-portal sync's use cases: recording each event's facts, the background worker,
the metrics refresher, resync and the operators' view.

Each event (`handlers`, in their own consumer group) writes its facts once (by event id) and
marks the dossier pending in the same single-document write; no call to the portal, so a portal
outage never slows or blocks the consumer. The `PortalWorker` sends what is pending.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from services.notification import metrics
from services.notification.portal.adapters.client import PortalClient
from services.notification.portal.adapters.store import Document, PortalStore
from services.notification.portal.domain import messages
from services.notification.portal.domain.sync_status import FAILED, SYNCED
from services.notification.portal.settings import PortalSettings
from services.notification.portal.worker import PortalWorker
from shared.contracts.events import (
    DossierPaid,
    DossierProcessed,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.runtime.service import ServiceContext

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _fact(model: messages.Fact) -> dict[str, Any]:
    return model.model_dump(mode="python")


class PortalSync:
    def __init__(
        self,
        *,
        settings: PortalSettings,
        store: PortalStore,
        client: PortalClient,
        worker: PortalWorker,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.worker = worker
        self._clock = clock

    # ------------------------------------------------------------------ events

    async def dossier_submitted(self, event: DossierSubmitted, event_id: str) -> None:
        update: dict[str, Any] = {
            "$set": {"submission": _fact(messages.submission_fact(event, event_id))}
        }
        if (step := messages.submission_step(event, event_id)) is not None:
            update["$push"] = {"steps": _fact(step)}
        await self._record(event.dossier_code, event_id, update, first=True)

    async def dossier_processed(self, event: DossierProcessed, event_id: str) -> None:
        step = messages.step_fact(event, event_id)
        if step is None:
            return  # an internal deadline warning: nothing for the portal
        await self._record(event.dossier_code, event_id, {"$push": {"steps": _fact(step)}})

    async def dossier_supplemented(self, event: DossierSupplemented, event_id: str) -> None:
        supply = messages.supply_fact(event, event_id)
        await self._record(event.dossier_code, event_id, {"$push": {"supplies": _fact(supply)}})

    async def dossier_paid(self, event: DossierPaid, event_id: str) -> None:
        payment = messages.payment_fact(event, event_id)
        await self._record(event.dossier_code, event_id, {"$push": {"payments": _fact(payment)}})

    async def dossier_withdrawn(self, event: DossierWithdrawn, event_id: str) -> None:
        # The state change (7, then 8) comes as processing's steps; the request itself is kept
        # for the record and, like every event, refreshes the dossier message.
        withdrawal = messages.withdrawal_fact(event, event_id)
        await self._record(
            event.dossier_code, event_id, {"$push": {"withdrawals": _fact(withdrawal)}}
        )

    async def _record(
        self, code: str, event_id: str, update: dict[str, Any], *, first: bool = False
    ) -> None:
        """Record an event's facts and sync the dossier. `first`: the dossier usually has no
        document yet (its submission), so the write tries an insert first."""
        now, claim = self._clock(), uuid.uuid4().hex
        lease = self.worker.lease()
        claimed = await self.store.record_and_claim(
            code, event_id, update, now, lease, claim, first=first
        )
        if claimed is not None:  # recorded and claimed in one write: the pass starts from it
            self.worker.hand_over(code, claimed, claim, now + lease)
        elif await self.store.record(code, event_id, update, now):
            self.worker.submit(code)  # a worker holds the dossier: its next pass sends this
        # (A redelivery changes nothing: the first delivery's one write made the dossier pending,
        # and the poller finds it if that process died before submitting it.)

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def lifecycle(self, context: ServiceContext | None = None) -> AsyncIterator[None]:
        """The worker and the gauges (recounted when the service's `/metrics` is read, at most
        every `portal_metrics_seconds`), inside a service's lifespan (a lifecycle hook: entered
        after the broker started, exited before it stops)."""
        await self.store.ensure_indexes()
        if merged := await self.store.migrate_sync_collection(self._clock()):
            log.info("portal sync: %d states of the former portal_sync collection merged", merged)
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
            claim, now, lease = uuid.uuid4().hex, self._clock(), self.worker.lease()
            reset = await self.store.reset_for_resync(code, now, lease, claim)
            if isinstance(reset, str):
                outcomes[code] = reset
                continue
            status = await self.worker.process_claimed(code, reset, claim, now + lease)
            outcomes[code] = status or "busy"
        return outcomes

    async def resync_failed(self) -> dict[str, str]:
        return await self.resync(await self.store.codes_with_status(FAILED))

    # ------------------------------------------------------------------ operators' view

    async def counts(self) -> dict[str, int]:
        """Dossiers per sync status."""
        return await self.store.counts()

    async def sync_state(self, code: str) -> Document | None:
        """Where the portal stands with one dossier (None: not known to the sync)."""
        return await self.store.sync_state(code)

    async def close(self) -> None:
        """Close the portal client (a command line's end; the lifecycle closes it too)."""
        await self.client.close()

"""The citizen-facing status view and the portal inbox, fed by processing's and notification's
events; each event is applied once (a redelivery changes nothing)."""

from __future__ import annotations

import logging

from services.intake.adapters.store import IntakeStore
from services.intake.domain.dossier import inbox_message, processing_step
from shared.contracts.events import DossierNotified, DossierProcessed
from shared.runtime.consumer import PermanentError

log = logging.getLogger(__name__)


class StatusView:
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    async def apply_processed(self, event: DossierProcessed, event_id: str) -> None:
        step = processing_step(event)
        if step is None:
            return  # internal to the unit; nothing for the citizen's view
        applied = await self.store.apply_processing_step(event.dossier_code, event_id, step)
        await self._check(applied, event.dossier_code, event_id)

    async def apply_notified(self, event: DossierNotified, event_id: str) -> None:
        message = inbox_message(event)
        if message is None:
            return
        applied = await self.store.add_inbox_message(event.dossier_code, event_id, message)
        await self._check(applied, event.dossier_code, event_id)

    async def _check(self, applied: bool, code: str, event_id: str) -> None:
        if applied:
            return
        if not await self.store.dossier_exists(code):
            # Every dossier starts at intake, so an event for an unknown one is not ours to fix.
            raise PermanentError(f"no dossier {code} at intake")
        log.info("event %s already applied", event_id)

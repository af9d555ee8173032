"""Sending each dossier's pending messages to the portal: in order, once, with bounded retries.

One dossier at a time per worker (claimed with a lease, like the notifier's deliveries):

1. read the record; without its submission nothing can be sent yet → `waiting`;
2. if the record changed since the portal last accepted its dossier message (`seq` >
   `synced_seq`), send the dossier message (always before the steps: the portal must know the
   dossier first), then every step the portal has not accepted yet, in time order; each accepted
   message is written down at once, so a crash resends only what was not acknowledged (the portal
   upserts, so a resend changes nothing there);
3. settle: `synced`; or, on a retryable failure, stay `pending` with `next_attempt_at` pushed back
   (exponential backoff, equal jitter) until `max_attempts`, then `failed`; a permanent failure
   (the portal refused the payload) is `failed` at once. Failed dossiers keep everything: a new
   event for them, or `resync`, sends again.

After settling, the worker re-reads the record's `seq`: if an event arrived meanwhile (whose own
`pending` mark FerretDB may have lost under our write), the dossier is made pending again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from services.notification import metrics
from services.notification.domain.retry import RetryConfig, backoff
from services.notification.portal.adapters.client import PortalClient, PortalError
from services.notification.portal.adapters.store import Document, PortalStore
from services.notification.portal.domain.messages import (
    DossierRecord,
    dossier_message,
    step_message,
)
from services.notification.portal.domain.sync_status import FAILED, PENDING, SYNCED, WAITING
from shared.runtime.logging import log_context
from shared.runtime.outbox import merge_updates
from shared.runtime.work_pool import WorkPool

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class LostClaim(Exception):
    """Another worker took the dossier over (our lease expired): stop touching it."""


class PortalWorker:
    def __init__(
        self,
        store: PortalStore,
        client: PortalClient,
        schedule: RetryConfig,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.client = client
        self.schedule = schedule
        self._clock = clock
        # Never two workers of this process on one dossier.
        self.pool = WorkPool(
            "portal-sync",
            process=self.process,
            poll=self.poll_once,
            workers=schedule.workers,
            poll_interval=schedule.poll_interval,
            max_poll_interval=schedule.max_poll_interval,
        )

    # ------------------------------------------------------------------ one dossier

    async def process(self, code: str) -> str | None:
        """Claim the dossier if it is due and sync it; its status afterwards, or None when it
        was not due or another worker holds it."""
        claim = uuid.uuid4().hex
        now = self._clock()
        state = await self.store.claim(code, now, timedelta(seconds=self.schedule.lease), claim)
        if state is None:
            return None
        with log_context(dossier_code=code):
            try:
                return await self._sync(code, state, claim)
            except LostClaim:
                log.warning("portal sync of %s taken over by another worker", code)
                return None

    async def _sync(self, code: str, state: Document, claim: str) -> str:
        facts = await self.store.facts(code)
        record = DossierRecord.model_validate(facts or {"_id": code})
        if record.submission is None:
            return await self._settle(code, claim, record.seq, WAITING, {})
        progressed = False
        # The last accepted message, written down with the next write: before the next send, or
        # in the update that ends the pass (no I/O in between, so a crash resends just as much).
        accepted: Document = {}
        try:
            if int(state.get("synced_seq") or 0) < record.seq:
                await self._send("dossier", self.client.send_dossier, dossier_message(record))
                accepted = {"$set": {"synced_seq": record.seq}}
                progressed = True
            sent = set(state.get("steps_sent") or ())
            for step in record.ordered_steps():
                if step.id in sent:
                    continue
                message = step_message(code, step, record.submission.unit_code)
                if accepted:
                    await self._owned(code, claim, accepted)
                    accepted = {}
                await self._send("step", self.client.send_step, message)
                accepted = {"$addToSet": {"steps_sent": step.id}}
                progressed = True
        except PortalError as exc:
            attempts = 1 if progressed else int(state.get("attempts") or 1)
            return await self._attempt_failed(code, claim, record.seq, attempts, exc, accepted)
        except ValidationError as exc:  # our own mapping produced an invalid message: a bug
            error = PortalError(f"invalid message built: {exc}", retryable=False)
            return await self._attempt_failed(code, claim, record.seq, 1, error, accepted)
        now = self._clock()
        extra = {"synced_at": now, "attempts": 0, "last_error": None}
        return await self._settle(code, claim, record.seq, SYNCED, extra, accepted)

    async def _send(self, kind: str, send: Callable[[Any], Awaitable[None]], message: Any) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            await send(message)
        except PortalError as exc:
            outcome = "retryable" if exc.retryable else "permanent"
            raise
        finally:
            metrics.PORTAL_SEND_SECONDS.labels(kind, outcome).observe(time.perf_counter() - started)
            metrics.PORTAL_SYNC_ATTEMPTS.labels(kind, outcome).inc()

    async def _owned(self, code: str, claim: str, update: Document) -> None:
        if not await self.store.update_owned(code, claim, update):
            raise LostClaim(code)

    async def _attempt_failed(
        self,
        code: str,
        claim: str,
        seq: int,
        attempts: int,
        error: PortalError,
        accepted: Document | None = None,
    ) -> str:
        text = str(error)[:1000]
        if error.retryable and attempts < self.schedule.max_attempts:
            delay = backoff(attempts, base=self.schedule.base_delay, cap=self.schedule.max_delay)
            now = self._clock()
            update = {
                "$set": {
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "attempts": attempts,
                    "claim": None,
                    "lease_until": None,
                    "last_error": text,
                    "updated_at": now,
                }
            }
            await self._owned(code, claim, merge_updates(update, accepted or {}))
            self.pool.due_at(now + timedelta(seconds=delay))  # the poller re-queues it then
            log.info("portal sync attempt %d failed (%s); retry in %.2fs", attempts, text, delay)
            return PENDING
        log.error("portal sync of %s failed after %d attempt(s): %s", code, attempts, text)
        return await self._settle(
            code, claim, seq, FAILED, {"last_error": text, "failed_at": self._clock()}, accepted
        )

    async def _settle(
        self,
        code: str,
        claim: str,
        seq: int,
        status: str,
        extra: Document,
        accepted: Document | None = None,
    ) -> str:
        """End the pass with `status` (and `accepted`, the last message's acknowledgement)."""
        now = self._clock()
        update = {
            "$set": {
                "status": status,
                "claim": None,
                "lease_until": None,
                "updated_at": now,
                **extra,
            }
        }
        await self._owned(code, claim, merge_updates(update, accepted or {}))
        if await self.store.seq(code) > seq:  # an event came in meanwhile: go again
            await self.store.mark_pending(code, now)
            self.submit(code)
            return PENDING
        return status

    # ------------------------------------------------------------------ the pool

    def submit(self, code: str) -> None:
        """Queue a dossier for the workers (the poller finds it anyway if this is lost)."""
        self.pool.submit(code)

    async def poll_once(self) -> int:
        codes = await self.store.due_codes(self._clock(), limit=500)
        for code in codes:
            self.submit(code)
        return len(codes)

    def start(self) -> None:
        self.pool.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let in-flight syncs finish (up to `grace` seconds), then stop. An
        abandoned dossier keeps its lease and is taken over when it expires."""
        await self.pool.stop(grace)

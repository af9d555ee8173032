"""Sending each dossier's pending messages to the portal: in order, once, with bounded retries.

One dossier at a time per worker, three database commands per pass, two when the event's write
claimed the dossier (`PortalStore`: the dossier's facts and sync state are one document):

1. claim: one `findAndModify` takes the due dossier with a lease and returns its facts and sync
   state; without its submission nothing can be sent yet → `waiting`. An event whose write
   claimed the dossier already (`PortalStore.record_and_claim`) hands the document it wrote
   over (`hand_over`), and the pass starts from it;
2. send: if the record changed since the portal last accepted its dossier message (`seq` >
   `synced_seq`), the dossier message (always before the steps: the portal must know the dossier
   first), then every step the portal has not accepted yet, in time order. What the portal
   accepts is written down with the update that ends the pass, not after each message: a crash
   (or a lost claim) mid-pass resends what was accepted since the claim, which changes nothing
   there (the portal upserts by dossier code and step id). No message is sent once the lease is
   over (another worker may hold the dossier by then): the pass writes what was accepted and
   leaves the rest to a fresh claim. On a portal failure the accepted messages are written with
   the failure;
3. settle: one update conditioned on the claim and on the `seq` read at claim: `synced`; or, on
   a retryable failure, stay `pending` with `next_attempt_at` pushed back (exponential backoff,
   equal jitter) until `max_attempts`, then `failed`; a permanent failure (the portal refused the
   payload) is `failed` at once. Failed dossiers keep everything: a new event for them, or
   `resync`, sends again. If an event came in during the pass (`seq` moved), the settle matches
   nothing and a second update (on the claim alone) writes what was accepted and leaves the
   dossier pending, due now: the next pass sends the event. If that matches nothing too, another
   worker took the dossier over (`LostClaim`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from services.notification import metrics
from services.notification.domain.retry import RetryConfig, backoff
from services.notification.portal.adapters.client import PortalClient, PortalError
from services.notification.portal.adapters.store import Document, PortalStore
from services.notification.portal.domain.messages import (
    DossierMessage,
    DossierRecord,
    StepMessage,
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


@dataclass
class Accepted:
    """What the portal accepted during one pass, written with the update that ends it."""

    synced_seq: int | None = None
    steps: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.synced_seq is not None or bool(self.steps)

    def update(self) -> Document:
        update: Document = {}
        if self.synced_seq is not None:
            update["$set"] = {"synced_seq": self.synced_seq}
        if self.steps:
            update["$addToSet"] = {"steps_sent": {"$each": self.steps}}
        return update


@dataclass(frozen=True)
class Claimed:
    """A dossier claimed by an event's write, waiting for its pass."""

    document: Document
    claim: str
    lease_end: datetime


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
        self._claimed: dict[str, Claimed] = {}  # handed over, pass not started yet
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

    def lease(self) -> timedelta:
        return timedelta(seconds=self.schedule.lease)

    def hand_over(self, code: str, document: Document, claim: str, lease_end: datetime) -> None:
        """Sync a dossier that an event's write claimed (`PortalStore.record_and_claim`), from
        the document that write returned: no claim of its own."""
        self._claimed[code] = Claimed(document, claim, lease_end)
        self.submit(code)  # (already queued: that pass takes it; in flight: see `process`)

    async def process_claimed(
        self, code: str, document: Document, claim: str, lease_end: datetime
    ) -> str | None:
        """Sync, now, a dossier the caller's own write claimed (an operator's resync); its status
        afterwards, or None when another worker took it over meanwhile."""
        self._claimed[code] = Claimed(document, claim, lease_end)
        return await self.process(code)

    async def process(self, code: str) -> str | None:
        """Claim the dossier if it is due and sync it (or take the claim handed over); its
        status afterwards, or None when it was not due or another worker holds it."""
        try:
            taken = self._claimed.pop(code, None)
            if taken is not None and self._clock() < taken.lease_end:
                document, claim, lease_end = taken.document, taken.claim, taken.lease_end
            else:
                claim, now, lease = uuid.uuid4().hex, self._clock(), self.lease()
                lease_end = now + lease
                claimed = await self.store.claim(code, now, lease, claim)
                if claimed is None:
                    return None
                document = claimed
            with log_context(dossier_code=code):
                try:
                    return await self._sync(code, document, claim, lease_end)
                except LostClaim:
                    log.warning("portal sync of %s taken over by another worker", code)
                    return None
        finally:
            if code in self._claimed:  # handed over during this pass: queued once it is done
                asyncio.get_running_loop().call_soon(self.submit, code)

    async def _sync(self, code: str, document: Document, claim: str, lease_end: datetime) -> str:
        record = DossierRecord.model_validate(document)
        if record.submission is None:
            return await self._settle(code, claim, record.seq, WAITING, {})
        accepted = Accepted()
        try:
            for message in self._unsent(record, document, record.submission.unit_code):
                if self._clock() >= lease_end:  # the dossier may be someone else's by now
                    return await self._again(code, claim, accepted)
                if isinstance(message, DossierMessage):
                    await self._send("dossier", self.client.send_dossier, message)
                    accepted.synced_seq = record.seq
                else:
                    await self._send("step", self.client.send_step, message)
                    accepted.steps.append(message.step_id)
        except PortalError as exc:
            attempts = 1 if accepted else int(document.get("attempts") or 1)
            return await self._attempt_failed(code, claim, record.seq, attempts, exc, accepted)
        except ValidationError as exc:  # our own mapping produced an invalid message: a bug
            error = PortalError(f"invalid message built: {exc}", retryable=False)
            return await self._attempt_failed(code, claim, record.seq, 1, error, accepted)
        now = self._clock()
        extra = {"synced_at": now, "attempts": 0, "last_error": None}
        return await self._settle(code, claim, record.seq, SYNCED, extra, accepted)

    @staticmethod
    def _unsent(
        record: DossierRecord, document: Document, unit_code: str
    ) -> Iterator[DossierMessage | StepMessage]:
        """The messages the portal has not accepted yet, in order (built as they are sent)."""
        if int(document.get("synced_seq") or 0) < record.seq:
            yield dossier_message(record)
        sent = set(document.get("steps_sent") or ())
        for step in record.ordered_steps():
            if step.id not in sent:
                yield step_message(record.dossier_code, step, unit_code)

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
        accepted: Accepted,
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
            # (An event that came in meanwhile is sent by the retry.)
            await self._owned(code, claim, merge_updates(update, accepted.update()))
            self.pool.due_at(now + timedelta(seconds=delay))  # the poller re-queues it then
            log.info("portal sync attempt %d failed (%s); retry in %.2fs", attempts, text, delay)
            return PENDING
        log.error("portal sync of %s failed after %d attempt(s): %s", code, attempts, text)
        failure = {"last_error": text, "failed_at": self._clock()}
        return await self._settle(code, claim, seq, FAILED, failure, accepted)

    async def _settle(
        self,
        code: str,
        claim: str,
        seq: int,
        status: str,
        extra: Document,
        accepted: Accepted | None = None,
    ) -> str:
        """End the pass with `status` and what the portal accepted, unless an event came in
        since the claim read the record at `seq`: then go again."""
        accepted = accepted if accepted is not None else Accepted()
        update = {
            "$set": {
                "status": status,
                "claim": None,
                "lease_until": None,
                "updated_at": self._clock(),
                **extra,
            }
        }
        if await self.store.update_owned(
            code, claim, merge_updates(update, accepted.update()), seq=seq
        ):
            return status
        kept = {"last_error": extra["last_error"]} if "last_error" in extra else {}
        return await self._again(code, claim, accepted, kept)

    async def _again(
        self, code: str, claim: str, accepted: Accepted, extra: Document | None = None
    ) -> str:
        """End the pass with the dossier pending and due now (what the portal accepted written
        down): an event came in during the pass, or the lease ran out."""
        now = self._clock()
        fields: Document = {
            "status": PENDING,
            "next_attempt_at": now,
            "claim": None,
            "lease_until": None,
            "updated_at": now,
            **(extra or {}),
        }
        if accepted:
            fields["attempts"] = 0  # progress: a fresh retry budget
        await self._owned(code, claim, merge_updates({"$set": fields}, accepted.update()))
        # While this pass is in flight the pool ignores `submit`: the poller, told it is due,
        # re-queues it (at the latest one `poll_interval` after this pass).
        self.submit(code)
        self.pool.due_at(now)
        return PENDING

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

"""The deadline scanner: what time alone does to cases (warnings, overdue, paper dossiers 2 → 4).

Several replicas may run it. Only the holder of the `deadline-scanner` lease (a document in the
`leases` collection, claimed by compare-and-set with an expiry) scans; and even if two scanned at
once (a lease expiring mid-pass), each warning is emitted at most once per case and threshold:
the "emitted" marker and the pending event are written in one compare-and-set on the case
version, so only one of two racing writers succeeds.

Cases are found through the indexed `next_check_at` (the earliest instant something is due), so a
pass reads only the cases that need it. After a pass the scanner sleeps until the earliest
`next_check_at` still ahead (`ProcessingService.deadline_checks`, at most
`scanner_interval_seconds`, or `idle_poll_max_seconds` while passes find nothing); a case written
in this process with an earlier one brings the next pass forward.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from services.processing import metrics
from services.processing.domain.errors import VersionConflict
from services.processing.domain.workflow import scan
from services.processing.service.cases import ProcessingService
from shared.runtime.failures import is_transient

log = logging.getLogger(__name__)

LEASE_NAME = "deadline-scanner"
# How long a case whose check failed is left aside before it is tried again.
QUARANTINE = timedelta(minutes=15)


class DeadlineScanner:
    def __init__(self, cases: ProcessingService, owner: str | None = None) -> None:
        self.cases = cases
        self.owner = owner or f"scanner-{uuid.uuid4().hex[:12]}"
        self.saved = 0  # cases brought up to date (a count)

    async def scan_once(self, now: datetime | None = None) -> int:
        """One pass if this scanner holds (or gets) the lease; returns the steps emitted, and
        tells `cases.deadline_checks` when the next check falls due."""
        settings = self.cases.settings
        store = self.cases.store
        lease = timedelta(seconds=settings.scanner_lease_seconds)
        if not await store.claim_lease(LEASE_NAME, self.owner, lease):
            return 0
        started = time.perf_counter()
        try:
            return await self._pass(now or datetime.now(UTC))
        finally:
            metrics.SCAN_SECONDS.observe(time.perf_counter() - started)

    async def _pass(self, now: datetime) -> int:
        store = self.cases.store
        checks = self.cases.deadline_checks
        earliest = await store.next_check_after(None)
        if earliest is None or earliest > now:  # nothing due: an idle pass's one query
            checks.due_at(earliest)
            return 0
        emitted = 0
        saved_before = self.saved
        batch = self.cases.settings.scanner_batch_size
        due = await store.due_for_check(now, batch)
        for code in due:
            emitted += await self._check_isolated(code, now)
        if self.saved > saved_before and len(due) >= batch:
            checks.due_in(0)  # more are due: the next batch at once
        else:
            checks.due_at(await store.next_check_after(now))
        return emitted

    async def _check_isolated(self, code: str, now: datetime) -> int:
        """`_check`, but a case that fails for a reason of its own (a stored document the rules
        cannot take, a bug) is logged, counted and set aside for `QUARANTINE` instead of
        aborting the pass for every case behind it. An infrastructure failure still ends the
        pass: the next one retries."""
        try:
            return await self._check(code, now)
        except Exception as exc:
            if is_transient(exc):
                raise
            metrics.SCAN_FAILURES.inc()
            log.exception("deadline check of %s failed; set aside for %s", code, QUARANTINE)
            await self.cases.store.postpone_check(code, now + QUARANTINE)
            return 0

    async def _check(self, code: str, now: datetime) -> int:
        stored = await self.cases.store.load(code)
        if stored is None:
            return 0
        outcome = scan(stored.case, now, self.cases.rules)
        if not outcome.steps and outcome.case.next_check_at == stored.case.next_check_at:
            return 0
        try:
            await self.cases.store.save(outcome, stored.case.version)
        except VersionConflict:
            return 0  # changed meanwhile: the writer recomputed next_check_at; seen next pass
        self.saved += 1
        for step in outcome.steps:
            if step.action.is_deadline_alert:
                metrics.DEADLINE_ALERTS.labels(step.action).inc()
            metrics.ACTIONS.labels(step.action, "system").inc()
        if outcome.steps:
            self.cases.relay.poke(outcome.case.code)
        return len(outcome.steps)

    async def release(self) -> None:
        """Give the lease up at shutdown, so another replica scans at once."""
        try:
            await self.cases.store.release_lease(LEASE_NAME, self.owner)
        except Exception:
            log.warning("could not release the scanner lease", exc_info=True)

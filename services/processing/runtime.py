"""Processing's use cases, wired to its store: open a case, apply an applicant's event, apply an
officer's action, and the working calendar with the administrators' changes.

Every change is read → decided by the pure domain (`domain/workflow.py`) → written with a
compare-and-set on the case version, together with its history and events (see `store.py`). A
lost race is retried from a fresh read, so the decision is always taken on the current state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from services.processing import metrics
from services.processing.domain.calendar import CalendarChange, WorkingCalendar
from services.processing.domain.case import Case
from services.processing.domain.deadlines import DeadlinePolicy
from services.processing.domain.lifecycle import Action, TransitionError
from services.processing.domain.workflow import (
    Command,
    Outcome,
    Rules,
    WorkflowError,
    apply,
    due_years_without_calendar,
    open_case,
    record_payment,
)
from services.processing.settings import ProcessingSettings
from services.processing.store import CaseStore, VersionConflict
from shared.background import Pacer
from shared.catalogue import Procedure
from shared.consumer import PermanentError
from shared.events import DossierPaid, DossierState, DossierSubmitted
from shared.metrics import DUPLICATE_EVENTS
from shared.outbox import OutboxRelay
from shared.topics import PROCESSING_GROUP

log = logging.getLogger(__name__)

APPLICANT = "applicant"
_MAX_CAS_ATTEMPTS = 5


class CaseNotFound(LookupError):
    pass


class CaseNotYetKnown(Exception):
    """An applicant's event arrived before the dossier's submitted event (other topic): transient,
    retried by the consumer, dead-lettered if the case never appears."""


@dataclass(frozen=True)
class ActResult:
    case: Case
    replayed: bool = False


@dataclass
class ProcessingRuntime:
    settings: ProcessingSettings
    store: CaseStore
    relay: OutboxRelay
    results: Any = None  # gridfs.AsyncGridFSBucket of issued result documents
    rules: Rules = field(init=False)
    # When the deadline scanner runs next (see `scanner.py`); every case written here tells it
    # its next check (`_announced`).
    deadline_checks: Pacer = field(init=False)
    _procedures: dict[str, tuple[float, Procedure]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rules = self._rules(WorkingCalendar())
        settings = self.settings
        self.deadline_checks = Pacer(
            settings.scanner_interval_seconds,
            max(settings.scanner_interval_seconds, settings.idle_poll_max_seconds),
        )

    def _rules(self, calendar: WorkingCalendar) -> Rules:
        policy = DeadlinePolicy(
            supplement_clock=cast(Literal["restart", "resume"], self.settings.supplement_clock),
            deadline_ends_at=cast(
                Literal["end_of_day", "end_of_office_hours"], self.settings.deadline_ends_at
            ),
        )
        return Rules(calendar, policy, tuple(self.settings.warning_fractions))

    # -- the working calendar -----------------------------------------------------------------

    async def reload_calendar(self) -> None:
        """Rebuild the calendar from the administrators' changes (other replicas: periodically).

        Due dates already set are kept (R8: the due date in force does not move by itself).
        """
        changes = await self.store.calendar_changes_list()
        self.rules = self._rules(WorkingCalendar(changes=changes))

    async def add_calendar_change(self, change: CalendarChange, actor: str) -> None:
        await self.store.add_calendar_change(change, actor)
        await self.reload_calendar()

    # -- the catalogue copy -------------------------------------------------------------------

    async def on_procedure(self, procedure: Procedure) -> None:
        await self.store.put_procedure(procedure)
        self._procedures[procedure.code] = (time.monotonic(), procedure)

    async def procedure(self, code: str) -> Procedure | None:
        """From a short-lived cache: the catalogue topic has one partition, so only one replica
        consumes it; the others read the shared collection."""
        cached = self._procedures.get(code)
        if cached and time.monotonic() - cached[0] < self.settings.procedure_cache_seconds:
            return cached[1]
        procedure = await self.store.get_procedure(code)
        if procedure is not None:
            self._procedures[code] = (time.monotonic(), procedure)
        return procedure

    async def _wait_for_procedure(self, code: str) -> Procedure:
        """The catalogue is read by its own consumer; at start-up it may lag the dossier topics,
        so wait a bounded time for it before giving up with a dead letter."""
        deadline = time.monotonic() + self.settings.unknown_procedure_wait_seconds
        while True:
            procedure = await self.procedure(code)
            if procedure is not None:
                return procedure
            if time.monotonic() >= deadline:
                raise PermanentError(
                    f"Thủ tục {code!r} không có trong danh mục (unknown procedure {code!r})"
                )
            await asyncio.sleep(0.2)

    # -- applicants' events ---------------------------------------------------------------------

    async def open_case(self, event: DossierSubmitted, event_id: str) -> bool:
        procedure = await self._wait_for_procedure(event.procedure_code)
        if procedure.unit_code != event.unit_code:
            log.warning(
                "routing to the catalogue's lead unit %s, not the event's %s",
                procedure.unit_code,
                event.unit_code,
            )
        outcome = open_case(event, procedure, self.rules)
        if not await self.store.insert(outcome, event_id):
            stored = await self.store.load(event.dossier_code)
            if stored is not None and event_id not in stored.applied_event_ids:
                raise PermanentError(
                    f"Mã hồ sơ {event.dossier_code} đã tồn tại "
                    f"(a case with this code exists already, opened by another event)"
                )
            DUPLICATE_EVENTS.labels("submitted", PROCESSING_GROUP).inc()
            return False
        metrics.CASES_OPENED.labels(outcome.case.unit_code, str(int(event.channel))).inc()
        self._announced(outcome, APPLICANT, since=0)
        return True

    async def apply_event(
        self, code: str, event_id: str, topic: str, change: Callable[[Case], Outcome]
    ) -> bool:
        """Apply an applicant's event once; a refused one is dead-lettered, nothing changed."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            stored = await self.store.load(code)
            if stored is None:
                raise CaseNotYetKnown(f"no case {code} yet")
            if event_id in stored.applied_event_ids:
                DUPLICATE_EVENTS.labels(topic, PROCESSING_GROUP).inc()
                return False
            try:
                outcome = change(stored.case)
            except (TransitionError, WorkflowError) as exc:
                raise PermanentError(str(exc)) from exc
            try:
                await self.store.save(outcome, stored.case.version, event_id=event_id)
            except VersionConflict:
                continue
            self._announced(outcome, APPLICANT, since=len(stored.case.due_history))
            return True
        raise VersionConflict(code)  # transient: the consumer retries

    def supplement(self, at: Any, note: str | None) -> Callable[[Case], Outcome]:
        return lambda case: apply(
            case,
            Command(Action.SUPPLEMENT_RECEIVED, APPLICANT, at, note=note),
            self.rules,
        )

    def withdrawal(self, at: Any, reason: str | None) -> Callable[[Case], Outcome]:
        return lambda case: apply(
            case, Command(Action.REQUEST_WITHDRAWAL, APPLICANT, at, reason=reason), self.rules
        )

    def payment(self, event: DossierPaid) -> Callable[[Case], Outcome]:
        def change(case: Case) -> Outcome:
            if case.state == DossierState.PAYMENT_REQUESTED:
                command = Command(
                    Action.PAYMENT_RECEIVED,
                    APPLICANT,
                    event.occurred_at,
                    note=f"Đã nộp {event.amount_vnd:,} đồng ({event.provider})",
                )
                return apply(case, command, self.rules)
            return record_payment(case, event.occurred_at, self.rules)

        return change

    # -- officers' actions -----------------------------------------------------------------------

    async def act(
        self,
        code: str,
        command: Callable[[Case], Command],
        *,
        authorise: Callable[[Case], None],
        request_key: str | None = None,
    ) -> ActResult:
        """Apply an officer's action; `authorise` raises when the officer may not act on the case.

        A request with an `Idempotency-Key` already applied to this case answers the case as it
        is, without acting again.
        """
        for _ in range(_MAX_CAS_ATTEMPTS):
            stored = await self.store.load(code)
            if stored is None:
                raise CaseNotFound(code)
            authorise(stored.case)
            if request_key is not None and request_key in stored.request_keys:
                return ActResult(stored.case, replayed=True)
            outcome = apply(stored.case, command(stored.case), self.rules)
            try:
                await self.store.save(outcome, stored.case.version, request_key=request_key)
            except VersionConflict:
                continue  # re-read: the other officer's change may make this one invalid
            self._announced(outcome, "officer", since=len(stored.case.due_history))
            return ActResult(outcome.case)
        raise VersionConflict(code)

    def _announced(self, outcome: Outcome, actor_kind: str, *, since: int) -> None:
        """Count the stored outcome's steps; warn of the due dates it set from
        `case.due_history[since]` on that fall in a year without an official calendar."""
        for year in due_years_without_calendar(outcome.case, self.rules, since):
            metrics.DUE_DATES_WITHOUT_CALENDAR.inc()
            log.warning(
                "due date of %s falls in %d, a year without an official holiday calendar: "
                "weekdays were counted as working days; enter that year's days off "
                "(POST /api/v1/calendar/changes) or upgrade the holidays package",
                outcome.case.code,
                year,
            )
        for step in outcome.steps:
            metrics.ACTIONS.labels(
                step.action, "system" if step.actor == "system" else actor_kind
            ).inc()
        if outcome.steps:
            self.relay.poke()
        self.deadline_checks.due_at(outcome.case.next_check_at)

"""Processing's use cases on cases, wired to its store: open a case, apply an applicant's event,
apply an officer's action, the worklist and the case detail, the working calendar with the
administrators' changes, and the gauges.

Every change is read → decided by the pure domain (`domain/workflow.py`) → written with a
compare-and-set on the case version, together with its history and events (see
`adapters/store.py`). A lost race is retried from a fresh read, so the decision is always taken on
the current state. Who may act is decided by `domain/authorisation.py`; a refusal is counted here
and raised as a domain error (`domain/errors.py`) for the API to answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from services.processing import metrics
from services.processing.adapters.store import CaseStore
from services.processing.domain.authorisation import VIEW, refusal
from services.processing.domain.calendar import CalendarChange, WorkingCalendar
from services.processing.domain.case import Case, CaseSummary
from services.processing.domain.deadlines import DeadlinePolicy
from services.processing.domain.errors import (
    CaseNotFound,
    CaseNotYetKnown,
    NotAuthorised,
    StaffWithoutUnit,
    VersionConflict,
)
from services.processing.domain.lifecycle import Action, TransitionError
from services.processing.domain.workflow import (
    Command,
    Outcome,
    PaymentAmountMismatch,
    Rules,
    WorkflowError,
    apply,
    due_years_without_calendar,
    open_case,
    record_payment,
)
from services.processing.settings import ProcessingSettings
from shared.contracts.catalogue import Procedure
from shared.contracts.events import (
    Channel,
    DossierPaid,
    DossierState,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.contracts.topics import PROCESSING_GROUP
from shared.runtime.auth import FORBIDDEN, Staff
from shared.runtime.background import Pacer
from shared.runtime.consumer import PermanentError
from shared.runtime.metrics import DUPLICATE_EVENTS
from shared.runtime.outbox import OutboxRelay

log = logging.getLogger(__name__)

SERVICE = "processing"  # the `service` label of `dvc_forbidden_total`
APPLICANT = "applicant"
_MAX_CAS_ATTEMPTS = 5
STATE_COUNTS_CACHE_SECONDS = 10.0
# Counts older than the cache's time but younger than this are answered at once and counted again
# in the background (older ones are counted before answering).
STATE_COUNTS_STALE_SECONDS = 300.0
STATE_COUNTS_CACHE_ENTRIES = 1024
CountsKey = tuple[str | None, str | None, int | None]


@dataclass(frozen=True)
class ActResult:
    case: Case
    replayed: bool = False


@dataclass(frozen=True)
class Worklist:
    """One page of the worklist, read at `as_of` (what "overdue" is measured against)."""

    items: list[CaseSummary]
    next_cursor: str | None
    as_of: datetime


@dataclass(frozen=True)
class StateCounts:
    """Active cases per state (`DossierState` value -> count) of `unit_code` (None: every
    unit), counted at `as_of`."""

    unit_code: str | None
    counts: dict[int, int]
    as_of: datetime


@dataclass
class ProcessingService:
    """The use cases on cases; `rules` (calendar, deadline policy) follow the calendar changes."""

    settings: ProcessingSettings
    store: CaseStore
    relay: OutboxRelay
    rules: Rules = field(init=False)
    # When the deadline scanner runs next (see `scanner.py`); every case written here tells it
    # its next check (`_announced`).
    deadline_checks: Pacer = field(init=False)
    _procedures: dict[str, tuple[float, Procedure]] = field(default_factory=dict)
    # The worklist's counts per state, by (unit, procedure, channel): counted at most every
    # `STATE_COUNTS_CACHE_SECONDS` (a count visits every open case of the unit: the worklist's
    # slowest query), so a page's counts may be that much behind its list; a page never waits
    # for a recount of counts it has (stale ones are answered while the recount runs, see
    # `state_counts`).
    _state_counts: dict[CountsKey, tuple[float, StateCounts]] = field(default_factory=dict)
    _recounts: dict[CountsKey, asyncio.Task[StateCounts]] = field(default_factory=dict)

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

    async def calendar_changes(self) -> list[CalendarChange]:
        """The announced changes layered on the official calendar (later entries win)."""
        return await self.store.calendar_changes_list()

    async def add_calendar_change(self, change: CalendarChange, actor: str) -> CalendarChange:
        """Record an administrator's change; answers the day as the calendar now has it."""
        await self.store.add_calendar_change(change, actor)
        await self.reload_calendar()
        working = self.rules.calendar.is_working_day(change.day)
        return CalendarChange(change.day, working, change.reason)

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

    async def supplemented(self, event: DossierSupplemented, event_id: str) -> bool:
        command = Command(Action.SUPPLEMENT_RECEIVED, APPLICANT, event.occurred_at, note=event.note)
        return await self.apply_event(
            event.dossier_code,
            event_id,
            "supplemented",
            lambda case: apply(case, command, self.rules),
        )

    async def withdrawn(self, event: DossierWithdrawn, event_id: str) -> bool:
        command = Command(
            Action.REQUEST_WITHDRAWAL, APPLICANT, event.occurred_at, reason=event.reason
        )
        return await self.apply_event(
            event.dossier_code, event_id, "withdrawn", lambda case: apply(case, command, self.rules)
        )

    async def paid(self, event: DossierPaid, event_id: str) -> bool:
        def change(case: Case) -> Outcome:
            if case.state == DossierState.PAYMENT_REQUESTED:
                command = Command(
                    Action.PAYMENT_RECEIVED,
                    APPLICANT,
                    event.occurred_at,
                    note=f"Đã nộp {event.amount_vnd:,} đồng ({event.provider})",
                    amount_vnd=event.amount_vnd,
                )
                return apply(case, command, self.rules)
            return record_payment(case, event.occurred_at, self.rules)

        try:
            return await self.apply_event(event.dossier_code, event_id, "paid", change)
        except PermanentError as exc:
            if isinstance(exc.__cause__, PaymentAmountMismatch):
                # Dead-lettered with the reason; the case stays awaiting its payment (state 6).
                metrics.PAYMENT_AMOUNT_MISMATCHES.inc()
                log.warning(
                    "payment %s of %s refused: %s",
                    event.transaction_id,
                    event.dossier_code,
                    exc,
                )
            raise

    # -- officers' views and actions ------------------------------------------------------------

    def authorise(self, staff: Staff, unit_code: str, action: str) -> None:
        """Raise `NotAuthorised` (counted) when `staff` may not take `action` on a case of
        `unit_code`."""
        why = refusal(staff.roles, staff.unit, unit_code, action)
        if why is not None:
            FORBIDDEN.labels(SERVICE, action).inc()
            metrics.REFUSED_ACTIONS.labels(action, "forbidden").inc()
            raise NotAuthorised(why, action)

    async def worklist(
        self,
        staff: Staff,
        *,
        states: Sequence[DossierState] = (),
        procedure_code: str | None = None,
        channel: Channel | None = None,
        code: str | None = None,
        overdue: bool = False,
        unit: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Worklist:
        """The unit's active cases: ONLINE dossiers first (Decision 4094), then by due date.
        Administrators choose the unit (or none: every unit); others see their own only.
        `code`: the one active case with this code (if it matches the other filters)."""
        unit_code = self._worklist_unit(staff, unit)
        now = datetime.now(UTC)
        items, next_cursor = await self.store.worklist(
            unit_code=unit_code,
            states=[int(s) for s in states],
            procedure_code=procedure_code,
            channel=int(channel) if channel is not None else None,
            code=code,
            overdue_at=now if overdue else None,
            cursor=cursor,
            limit=limit,
        )
        return Worklist(items, next_cursor, now)

    async def state_counts(
        self,
        staff: Staff,
        *,
        procedure_code: str | None = None,
        channel: Channel | None = None,
        unit: str | None = None,
    ) -> StateCounts:
        """The unit's active cases per state, with the worklist's procedure and channel
        filters (the same unit rule as the worklist)."""
        unit_code = self._worklist_unit(staff, unit)
        key = (unit_code, procedure_code, int(channel) if channel is not None else None)
        cached = self._state_counts.get(key)
        age = time.monotonic() - cached[0] if cached is not None else None
        if cached is None or age is None or age >= STATE_COUNTS_STALE_SECONDS:
            return await self._count_states(key)
        if age >= STATE_COUNTS_CACHE_SECONDS and key not in self._recounts:
            recount = asyncio.create_task(self._count_states(key))
            self._recounts[key] = recount
            recount.add_done_callback(lambda task: self._recount_done(key, task))
        return cached[1]

    async def _count_states(self, key: CountsKey) -> StateCounts:
        unit_code, procedure_code, channel = key
        counted = StateCounts(
            unit_code,
            await self.store.state_counts(
                unit_code=unit_code, procedure_code=procedure_code, channel=channel
            ),
            datetime.now(UTC),
        )
        if len(self._state_counts) >= STATE_COUNTS_CACHE_ENTRIES:
            self._state_counts.clear()
        self._state_counts[key] = (time.monotonic(), counted)
        return counted

    def _recount_done(self, key: CountsKey, task: asyncio.Task[StateCounts]) -> None:
        self._recounts.pop(key, None)
        if not task.cancelled() and (error := task.exception()) is not None:
            # The stale counts stay; the next page tries again.
            log.warning("recounting the worklist's states failed: %r", error)

    def _worklist_unit(self, staff: Staff, unit: str | None) -> str | None:
        """Administrators choose the unit (or none: every unit); others see their own only."""
        if staff.is_admin:
            return unit
        if unit is not None and unit != staff.unit:
            self.authorise(staff, unit, VIEW)
        if staff.unit is None:
            raise StaffWithoutUnit(staff.subject)
        return staff.unit

    async def case(self, staff: Staff, code: str) -> Case:
        """The case with its history, if `staff` may see it."""
        stored = await self.store.load(code)
        if stored is None:
            raise CaseNotFound(code)
        self.authorise(staff, stored.case.unit_code, VIEW)
        return stored.case

    @staticmethod
    def request_key(staff: Staff, action: Action, idempotency_key: str | None) -> str | None:
        """What a request's `Idempotency-Key` is recorded as: per action and officer."""
        return f"{action.value}:{staff.subject}:{idempotency_key}" if idempotency_key else None

    async def act(
        self,
        staff: Staff,
        code: str,
        action: Action,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> ActResult:
        """Apply an officer's action (`fields`: the `Command`'s, by action). Refusals are counted
        by reason (forbidden, lifecycle, rule, conflict) and raised.

        A request with an `Idempotency-Key` already applied to this case answers the case as it
        is, without acting again.
        """
        try:
            return await self._act(
                code,
                lambda case: Command(
                    action, staff.subject, datetime.now(UTC), actor_name=staff.name, **fields
                ),
                authorise=lambda case: self.authorise(staff, case.unit_code, action.value),
                request_key=self.request_key(staff, action, idempotency_key),
            )
        except TransitionError:
            metrics.REFUSED_ACTIONS.labels(action.value, "lifecycle").inc()
            raise
        except WorkflowError:
            metrics.REFUSED_ACTIONS.labels(action.value, "rule").inc()
            raise
        except VersionConflict:
            metrics.REFUSED_ACTIONS.labels(action.value, "conflict").inc()
            raise

    async def _act(
        self,
        code: str,
        command: Callable[[Case], Command],
        *,
        authorise: Callable[[Case], None],
        request_key: str | None,
    ) -> ActResult:
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

    # -- gauges ---------------------------------------------------------------------------------

    async def refresh_gauges(self) -> None:
        """Cases by unit and state, overdue cases by unit (a query each, off the request path)."""
        counts = await self.store.counts_by_unit_and_state()
        overdue = await self.store.overdue_by_unit(datetime.now(UTC))
        metrics.CASES.clear()
        for (unit, state), n in counts.items():
            metrics.CASES.labels(unit, str(state)).set(n)
        metrics.OVERDUE_CASES.clear()
        for unit, n in overdue.items():
            metrics.OVERDUE_CASES.labels(unit).set(n)

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
            self.relay.poke(outcome.case.code)
        self.deadline_checks.due_at(outcome.case.next_check_at)

"""The case: processing's record of one dossier (one MongoDB document, key = dossier code).

Pure data. `workflow` changes it; the case store (`adapters/store.py`) persists it and reads it
back as a `StoredCase` (with the ids of what already changed it), or as a `CaseSummary` for the
worklist. The fields that only serve queries (`online_rank`, `due_sort`, `active`,
`next_check_at`) are derived by `workflow.refresh`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.catalogue import ProcessingTime
from shared.contracts.events import Channel, DocumentRef, DossierState

# Sorts after every real due date: cases without one (not received yet, paused) come last.
NO_DUE_DATE = datetime(9999, 12, 31, tzinfo=UTC)


class HistoryEntry(BaseModel):
    """One step: who, when, which unit, what (shown to the citizen, DOMAIN.md §3)."""

    at: datetime
    action: str
    actor: str
    unit_code: str
    from_state: DossierState | None
    to_state: DossierState
    note: str | None = None
    actor_name: str | None = None  # as the actor's token named them, for the workspace


class PauseRecord(BaseModel):
    """R7: the clock stopped while a supplement is awaited."""

    started_at: datetime
    ended_at: datetime | None = None
    reason: str


class DueDateRecord(BaseModel):
    """R8: the original due date and every re-set one, with when and why."""

    due_at: datetime | None
    set_at: datetime
    reason: str


class ExtensionRecord(BaseModel):
    """Form 04: the apology and the one new appointment date."""

    recorded_at: datetime
    actor: str
    reason: str
    previous_due_at: datetime
    new_due_at: datetime


class Case(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str
    procedure_code: str
    procedure_name: str = ""
    unit_code: str
    level: int
    channel: Channel
    state: DossierState
    applicant_name: str = ""
    assignee: str | None = None
    assignee_name: str | None = None  # as the staff directory named them at the assignment
    fee_vnd: int = 0

    # Deadline inputs, copied from the catalogue when the case opened.
    processing_time: ProcessingTime | None = None
    cutoff_15h: bool = False
    fee_starts_clock: bool = False

    submitted_at: datetime
    received_at: datetime | None = None
    paid_at: datetime | None = None
    clock_started_at: datetime | None = None  # t0
    due_at: datetime | None = None  # the due date in force (None before t0 and while paused)
    due_history: list[DueDateRecord] = Field(default_factory=list)
    pauses: list[PauseRecord] = Field(default_factory=list)
    extensions: list[ExtensionRecord] = Field(default_factory=list)
    start_processing_at: datetime | None = None  # paper dossiers: when 2 → 4 happens by itself

    requested_documents: list[str] = Field(default_factory=list)
    payment_amount_vnd: int | None = None
    approved: bool = False
    result_document: DocumentRef | None = None
    return_method: str | None = None
    warnings_emitted: list[str] = Field(default_factory=list)

    # Derived, for the worklist and the deadline scanner.
    online_rank: int = 1
    due_sort: datetime = NO_DUE_DATE
    active: bool = True
    next_check_at: datetime | None = None

    version: int = 0
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def online(self) -> bool:
        return self.channel == Channel.ONLINE

    @property
    def paused(self) -> bool:
        return any(pause.ended_at is None for pause in self.pauses)


@dataclass(frozen=True)
class StoredCase:
    """A case as stored, with the input event ids and request keys that already changed it."""

    case: Case
    applied_event_ids: frozenset[str]
    request_keys: frozenset[str]


class CaseSummary(BaseModel):
    """One line of the worklist (the history stays in the detail view)."""

    model_config = ConfigDict(extra="ignore")

    code: str
    procedure_code: str
    procedure_name: str = ""
    unit_code: str
    level: int
    channel: Channel
    state: DossierState
    applicant_name: str = ""
    assignee: str | None = None
    submitted_at: datetime
    received_at: datetime | None = None
    due_at: datetime | None = None
    # The deadline warnings the scanner emitted, in working time (`deadline_warning_50`, ...).
    warnings_emitted: list[str] = Field(default_factory=list)
    online_rank: int = 1
    due_sort: datetime = NO_DUE_DATE

    @property
    def online(self) -> bool:
        """Listed first (Decision 4094): the online rank the worklist is sorted by."""
        return self.online_rank == 0

"""The officer API's request bodies and response models (so OpenAPI shows every answer); the
RFC 9457 problems each route may answer are declared with `shared.runtime.http.problems`."""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.processing.domain.calendar import CalendarChange
from services.processing.domain.case import (
    Case,
    CaseSummary,
    DueDateRecord,
    ExtensionRecord,
    HistoryEntry,
    PauseRecord,
)
from services.processing.domain.lifecycle import Action, allowed_actions, overdue
from services.processing.service.cases import StateCounts
from shared.contracts.catalogue import ProcessingTime
from shared.contracts.events import Channel, DocumentRef, DossierState
from shared.runtime.http import StrictDate

# -- request bodies -------------------------------------------------------------------------------

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class ActionBody(BaseModel):
    """The body of a workflow action; `command_fields` are the `Command`'s fields it sets."""

    model_config = ConfigDict(extra="forbid")

    def command_fields(self) -> dict[str, Any]:
        return self.model_dump()


class NoteBody(ActionBody):
    note: Text | None = None


class ReasonBody(ActionBody):
    reason: Text


class AssignBody(ActionBody):
    assignee: str = Field(min_length=1, max_length=100, description="The officer's subject (id)")
    note: Text | None = None


class SupplementBody(ActionBody):
    reason: Text
    documents: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        min_length=1, max_length=50, description="Documents the applicant must supply"
    )

    def command_fields(self) -> dict[str, Any]:
        return {"reason": self.reason, "documents": tuple(self.documents)}


class PaymentBody(ActionBody):
    amount_vnd: int = Field(gt=0, le=10_000_000_000)
    note: Text | None = None


class ReturnBody(ActionBody):
    method: Literal["counter", "post", "online"]
    note: Text | None = None

    def command_fields(self) -> dict[str, Any]:
        return {"return_method": self.method, "note": self.note}


class ExtendBody(ActionBody):
    """Form 04: the apology's reason and the one new appointment date (a working day)."""

    reason: Text
    new_due_date: StrictDate = Field(
        description="The new appointment date: a working day after the due date in force "
        "(`due_at` of the case), recorded at least one day before that due date; once per case"
    )


class CalendarChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: StrictDate
    working: StrictBool = Field(
        description="true: an extra working day; false: an announced day off"
    )
    reason: Text


# -- responses ------------------------------------------------------------------------------------


class WorklistItem(BaseModel):
    """One case of the worklist (the history stays in the detail)."""

    code: str
    procedure_code: str
    procedure_name: str
    unit_code: str
    level: int
    channel: Channel
    state: DossierState
    applicant_name: str
    assignee: str | None
    submitted_at: datetime
    received_at: datetime | None
    due_at: datetime | None
    warnings_emitted: list[str] = Field(
        description="The deadline warnings emitted so far, counted in working time "
        "(`deadline_warning_50`, `deadline_warning_80`, `overdue`)"
    )
    online: bool = Field(description="Submitted online: listed first (Decision 4094)")
    overdue: bool = Field(description="Past the due date in force while the clock runs")

    @classmethod
    def of(cls, summary: CaseSummary, now: datetime) -> "WorklistItem":
        return cls.model_validate(
            {
                **summary.model_dump(exclude={"online_rank", "due_sort"}),
                "online": summary.online,
                "overdue": overdue(summary.state, summary.due_at, now),
            }
        )


class WorklistPage(BaseModel):
    items: list[WorklistItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class StateCount(BaseModel):
    state: DossierState
    count: int


class CaseCounts(BaseModel):
    """Active cases per state, in the lifecycle's order (states without a case left out)."""

    unit_code: str | None = Field(description="null: every unit (administrators)")
    total: int
    states: list[StateCount]
    as_of: datetime

    @classmethod
    def of(cls, counted: StateCounts) -> "CaseCounts":
        return cls(
            unit_code=counted.unit_code,
            total=sum(counted.counts.values()),
            states=[
                StateCount(state=DossierState(state), count=count)
                for state, count in sorted(counted.counts.items())
                if count
            ],
            as_of=counted.as_of,
        )


# The case's fields that only serve queries and concurrency, not shown to officers.
INTERNAL_CASE_FIELDS = frozenset({"online_rank", "due_sort", "active", "next_check_at", "version"})


class CaseDetail(BaseModel):
    """The case with its history, pauses, due dates (original and re-set) and extensions."""

    code: str
    procedure_code: str
    procedure_name: str
    unit_code: str
    level: int
    channel: Channel
    state: DossierState
    applicant_name: str
    assignee: str | None
    assignee_name: str | None = Field(
        default=None, description="The assignee's name as the staff directory knew it"
    )
    fee_vnd: int
    processing_time: ProcessingTime | None
    cutoff_15h: bool
    fee_starts_clock: bool
    submitted_at: datetime
    received_at: datetime | None
    paid_at: datetime | None
    clock_started_at: datetime | None
    due_at: datetime | None = Field(description="The due date in force (null: not running)")
    due_history: list[DueDateRecord]
    pauses: list[PauseRecord]
    extensions: list[ExtensionRecord]
    start_processing_at: datetime | None
    requested_documents: list[str]
    payment_amount_vnd: int | None
    approved: bool
    result_document: DocumentRef | None
    return_method: str | None
    warnings_emitted: list[str]
    history: list[HistoryEntry]
    overdue: bool = Field(description="Past the due date in force while the clock runs")
    allowed_actions: list[Action] = Field(description="What the lifecycle allows in this state")

    @classmethod
    def of(cls, case: Case, now: datetime) -> "CaseDetail":
        return cls.model_validate(
            {
                **case.model_dump(exclude=set(INTERNAL_CASE_FIELDS)),
                "overdue": overdue(case.state, case.due_at, now),
                "allowed_actions": allowed_actions(case.state),
            }
        )


class CalendarDay(BaseModel):
    day: date
    working: bool = Field(description="true: a working day; false: a day off")
    reason: str

    @classmethod
    def of(cls, change: CalendarChange) -> "CalendarDay":
        return cls(day=change.day, working=change.working, reason=change.reason)

"""A dossier as intake keeps it: what was submitted, the citizen-facing status view, the history
of steps and the inbox, with the rules of what a citizen may do in which state.

Pure: the store (`services.intake.adapters.store`) reads and writes it; the service layer asks it
what is allowed and what changes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.intake.domain.applicants import mask_identifier
from services.intake.domain.erasure import is_finished
from services.intake.domain.errors import (
    AlreadyPaid,
    AlreadyRated,
    CannotWithdraw,
    NoOnlinePayment,
    NoPaymentRequested,
    NoResultYet,
    NoSupplementRequested,
    NotFinished,
    NothingToPay,
    ResultAtCounter,
)
from shared.contracts.catalogue import Procedure
from shared.contracts.events import (
    Channel,
    DocumentRef,
    DossierNotified,
    DossierProcessed,
    DossierState,
    StepAction,
)

# The state names citizens read (the national portal's wording).
STATE_LABELS = {
    1: "Mới nộp trực tuyến, chờ tiếp nhận",
    2: "Đã tiếp nhận",
    3: "Không tiếp nhận",
    4: "Đang xử lý",
    5: "Yêu cầu bổ sung hồ sơ",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính",
    7: "Công dân yêu cầu rút hồ sơ",
    8: "Dừng xử lý",
    9: "Đã có kết quả",
    10: "Đã trả kết quả",
}
WITHDRAWABLE_STATES = {1, 2, 4, 5, 6}
# A dossier is rated once finished: stopped (8: refused after appraisal, or withdrawn) or its
# result returned (10).
RATABLE_STATES = {DossierState.STOPPED, DossierState.RESULT_RETURNED}
ONLINE_PAYMENT_LEVEL = 4


def hash_secret(secret: str) -> str:
    """How a tracking secret is kept: only its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()


def initial_state(channel: Channel) -> DossierState:
    """Online dossiers await the intake check; those handed in at a counter are received."""
    return DossierState.SUBMITTED if channel is Channel.ONLINE else DossierState.RECEIVED


class Status(BaseModel):
    """The citizen-facing status view, fed by processing's steps."""

    model_config = ConfigDict(extra="ignore")

    state: int
    updated_at: datetime
    action: str | None = None
    due_at: datetime | None = None
    citizen_action: str | None = None
    requested_documents: list[str] | None = None
    unit_code: str | None = None
    overdue: bool = False
    result_document: DocumentRef | None = None
    supplement_sent: bool = False
    withdrawal_requested: bool = False
    paid: bool = False
    # The unit's payment request in force: the amount it asked (None: the request carried no
    # amount, the catalogue fee is due) and when it asked (which identifies the request).
    amount_vnd: int | None = None
    payment_requested_at: datetime | None = None


class HistoryStep(BaseModel):
    at: datetime
    state: int
    action: str
    unit_code: str | None = None
    note: str | None = None


class InboxMessage(BaseModel):
    notification_id: str | None = None
    at: datetime
    title: str | None = None
    body: str


class Rating(BaseModel):
    """The applicant's satisfaction rating of a finished dossier (one per dossier)."""

    score: int = Field(ge=1, le=5)
    comment: str | None = None
    at: datetime


class Dossier(BaseModel):
    """One dossier. `code` is its national dossier code (the `_id` in storage)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    code: str = Field(alias="_id")
    procedure_code: str
    procedure_name: str
    unit_code: str
    unit_name: str
    level: int
    channel: int
    applicant: dict[str, Any]
    contact: dict[str, Any]
    form: dict[str, Any] = Field(default_factory=dict)
    documents: list[DocumentRef] = Field(default_factory=list)
    fee_vnd: int
    submitted_at: datetime
    tracking_secret_sha256: str
    status: Status
    history: list[HistoryStep] = Field(default_factory=list)
    inbox: list[InboxMessage] = Field(default_factory=list)
    rating: Rating | None = None

    @classmethod
    def submitted(
        cls,
        *,
        code: str,
        procedure: Procedure,
        applicant: dict[str, Any],
        contact: dict[str, Any],
        form: dict[str, Any],
        documents: list[DocumentRef],
        channel: Channel,
        received_at: datetime,
        tracking_secret: str,
    ) -> Dossier:
        """A new dossier, as received: state 1 online, 2 at the counter or by post."""
        state = int(initial_state(channel))
        return cls(
            code=code,
            procedure_code=procedure.code,
            procedure_name=procedure.name,
            unit_code=procedure.unit_code,
            unit_name=procedure.unit_name,
            level=procedure.level,
            channel=int(channel),
            applicant=applicant,
            contact=contact,
            form=form,
            documents=documents,
            fee_vnd=procedure.total_fee_vnd,
            submitted_at=received_at,
            tracking_secret_sha256=hash_secret(tracking_secret),
            status=Status(state=state, updated_at=received_at),
            history=[HistoryStep(at=received_at, state=state, action="submit")],
        )

    @property
    def state(self) -> int:
        return self.status.state

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.status.state]

    @property
    def masked_applicant_identifier(self) -> str:
        return mask_identifier(self.applicant.get("identifier"))

    # --- What the citizen may do ---------------------------------------------------------------

    def check_withdrawable(self) -> None:
        """A withdrawal may be asked once, before the unit has decided."""
        if self.state not in WITHDRAWABLE_STATES or self.status.withdrawal_requested:
            raise CannotWithdraw(f"The dossier is in state {self.state} ({self.state_label}).")

    def check_supplement_open(self) -> None:
        """Supplements are accepted once per supplement request."""
        if self.state != DossierState.SUPPLEMENT_REQUESTED or self.status.supplement_sent:
            raise NoSupplementRequested(
                "Supplements are accepted only while a supplement request is open."
            )

    def check_ratable(self) -> None:
        """A rating is taken once, when the dossier is finished (states 8 and 10)."""
        if self.rating is not None:
            raise AlreadyRated("This dossier has been rated already.")
        if self.state not in RATABLE_STATES:
            raise NotFinished(
                f"The dossier is in state {self.state} ({self.state_label}): it can be rated "
                "once stopped (8) or its result returned (10)."
            )

    def supplement_procedure(self, procedure: Procedure) -> Procedure:
        """The procedure as a supplement sees it: only the requested documents are mandatory."""
        requested = set(self.status.requested_documents or [])
        return procedure.model_copy(
            update={
                "documents": [
                    d.model_copy(update={"mandatory": d.code in requested})
                    for d in procedure.documents
                ]
            }
        )

    def amount_to_pay(self) -> int:
        """What to pay online now: level 4 only, once the unit has asked for it, and not yet
        paid. The amount the unit asked; the catalogue fee only when its request carried none
        (a request announced before events carried the amount)."""
        if self.level != ONLINE_PAYMENT_LEVEL:
            raise NoOnlinePayment("Level-3 procedures are paid at the counter.")
        if self.state != DossierState.PAYMENT_REQUESTED:
            raise NoPaymentRequested("The unit has not asked for the fee yet.")
        if self.status.paid:
            raise AlreadyPaid("The payment the unit asked for has been made.")
        requested = self.status.amount_vnd
        amount = int(self.fee_vnd if requested is None else requested)
        if amount <= 0:
            raise NothingToPay("This dossier has no fee.")
        return amount

    def payment_request_key(self) -> str:
        """Identifies the unit's payment request in force: the transactions started for it are
        numbered under this key (`<key>-<attempt>`), so that one request has at most one open
        transaction. Hex, fit for a transaction id."""
        asked = self.status.payment_requested_at
        moment = asked.isoformat() if asked is not None else "-"
        return hashlib.sha256(f"{self.code}|{moment}".encode()).hexdigest()[:32]

    def result_online(self) -> DocumentRef:
        """The result document delivered online: level 4 only, once issued."""
        if self.level != ONLINE_PAYMENT_LEVEL:
            raise ResultAtCounter("Level-3 results are returned at the counter or by post.")
        if self.status.result_document is None:
            raise NoResultYet("The unit has not issued the result.")
        return self.status.result_document


def secret_opens(dossier: Dossier | None, given: str | None) -> bool:
    """Whether `given` is the dossier's tracking secret. Constant-time, and an unknown dossier
    costs the same comparison, so that codes cannot be told apart from wrong secrets."""
    expected = dossier.tracking_secret_sha256 if dossier else hash_secret("-")
    return (
        given is not None
        and hmac.compare_digest(hash_secret(given), expected)
        and dossier is not None
    )


# --- What processing's and notification's events change -----------------------------------------


@dataclass(frozen=True)
class ProcessingStep:
    """A step of processing as the citizen's view takes it: the status fields that change, and
    the step appended to the history."""

    status: dict[str, Any]
    history: HistoryStep

    @property
    def finishes(self) -> bool:
        """The step finishes the dossier (3, 8 or 10): its personal data's retention starts."""
        return "state" in self.status and is_finished(self.status["state"])


def processing_step(event: DossierProcessed) -> ProcessingStep | None:
    """The change a processing step makes to the status view; None for steps internal to the
    unit (deadline warnings). An overdue flag changes only `overdue`; any other step replaces
    the view and reopens supplements (a new step: a new supplement request may follow); a
    payment request also records the amount asked and opens a new, unpaid request."""
    if event.action.is_deadline_warning:
        return None
    status: dict[str, Any] = {
        "state": int(event.state),
        "action": event.action,
        "due_at": event.due_at,
        "citizen_action": event.citizen_action,
        "requested_documents": event.requested_documents,
        "unit_code": event.unit_code,
        "updated_at": event.occurred_at,
        "supplement_sent": False,
    }
    if event.action is StepAction.REQUEST_PAYMENT:
        status["amount_vnd"] = event.amount_vnd
        status["payment_requested_at"] = event.occurred_at
        status["paid"] = False
    if event.action is StepAction.OVERDUE:
        status = {"overdue": True, "updated_at": event.occurred_at}
    if event.result_document is not None:
        status["result_document"] = event.result_document.model_dump(mode="json")
    step = HistoryStep(
        at=event.occurred_at,
        state=int(event.state),
        action=event.action,
        unit_code=event.unit_code,
        note=event.note,
    )
    return ProcessingStep(status, step)


def inbox_message(event: DossierNotified) -> InboxMessage | None:
    """The message an inbox notification puts in the dossier's inbox (other channels: None)."""
    if event.channel != "inbox" or event.body is None:
        return None
    return InboxMessage(
        notification_id=event.notification_id,
        at=event.occurred_at,
        title=event.title,
        body=event.body,
    )

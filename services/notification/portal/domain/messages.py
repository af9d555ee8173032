"""What the National Public Service Portal is sent, built from what our events said (pure, no I/O).

Two layers:

- the *record* (`DossierRecord`): the facts each internal event brought about one dossier, stored
  as they came (submission, processing steps, payments, supplied documents, withdrawal requests);
- the portal's *sync messages*, derived from the record at send time: one `DossierMessage` (the
  dossier as it stands: state, dates, documents, fees, supplements, results; the portal upserts it
  by dossier code) and one `StepMessage` per progress step (upserted by dossier code and step id).

Deriving the messages from the facts at send time (rather than storing rendered messages) means a
resync rebuilds exactly what the portal should hold, a late or out-of-order event only changes
the next dossier message, and the mapping can be corrected and replayed.

Portal conventions (DOMAIN.md §6, [practice]): dates `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh, state
codes 1–10 (`DossierState`), channel codes 1 counter / 2 online / 3 post (`Channel`). The field
names (`MaHoSo`, `NgayHenTra`, ...) follow the style of published provincial integrations with
the portal and are NOT verified against its current specification [check]: they live in this
module only, as aliases of English attribute names.

Personal data (Decree 13/2023): the portal is a government system and shows the owner, so the
owner's name and kind go there; the citizen ID / tax code, phone and e-mail do not (the record
does not even store them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.events import (
    DOSSIER_CODE_PATTERN,
    ApplicantKind,
    Channel,
    DocumentRef,
    DossierPaid,
    DossierProcessed,
    DossierState,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
    PublicStep,
    StepAction,
)

PORTAL_TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PORTAL_DATE_PATTERN = r"^\d{14}$"
CONTENT_MAX_LENGTH = 2000
SUBMIT_ACTION = PublicStep.SUBMIT
SYSTEM_ACTOR = "system"

# Owner type codes [check]: 1 citizen, 2 organisation.
OWNER_TYPE_CODES: dict[ApplicantKind, int] = {
    ApplicantKind.PERSON: 1,
    ApplicantKind.ORGANISATION: 2,
}

# The progress-step text shown on the portal, per processing action (Vietnamese).
ACTION_LABELS: dict[PublicStep, str] = {
    PublicStep.SUBMIT: "Nộp hồ sơ trực tuyến",
    PublicStep.RECEIVE: "Tiếp nhận hồ sơ",
    PublicStep.REFUSE_INTAKE: "Từ chối tiếp nhận hồ sơ",
    PublicStep.START_PROCESSING: "Chuyển hồ sơ đến đơn vị xử lý",
    PublicStep.REQUEST_SUPPLEMENT: "Yêu cầu bổ sung hồ sơ",
    PublicStep.SUPPLEMENT_RECEIVED: "Tiếp nhận hồ sơ bổ sung",
    PublicStep.REQUEST_PAYMENT: "Yêu cầu thực hiện nghĩa vụ tài chính",
    PublicStep.PAYMENT_RECEIVED: "Đã thực hiện nghĩa vụ tài chính",
    PublicStep.CLOCK_STARTED: "Bắt đầu tính thời hạn giải quyết",
    PublicStep.REFUSE: "Dừng xử lý, từ chối giải quyết hồ sơ",
    PublicStep.REQUEST_WITHDRAWAL: "Công dân đề nghị rút hồ sơ",
    PublicStep.CONFIRM_WITHDRAWAL: "Xác nhận rút hồ sơ",
    PublicStep.ISSUE_RESULT: "Có kết quả giải quyết",
    PublicStep.RETURN_RESULT: "Trả kết quả giải quyết",
    PublicStep.ASSIGN: "Phân công xử lý",
    PublicStep.APPROVE: "Lãnh đạo phê duyệt",
    PublicStep.EXTEND: "Gia hạn, hẹn lại ngày trả kết quả",
    PublicStep.OVERDUE: "Hồ sơ quá hạn giải quyết",
}
ACTOR_LABELS: dict[str, str] = {SYSTEM_ACTOR: "Hệ thống", "applicant": "Người nộp hồ sơ"}
FEE_NAME = "Phí, lệ phí giải quyết thủ tục hành chính"


def portal_time(moment: datetime) -> str:
    """`yyyyMMddHHmmss` in Asia/Ho_Chi_Minh (a naive datetime is taken as UTC, as stored)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(PORTAL_TIMEZONE).strftime("%Y%m%d%H%M%S")


def _optional_time(moment: datetime | None) -> str | None:
    return portal_time(moment) if moment is not None else None


def is_internal_step(action: StepAction) -> bool:
    """Deadline warnings are for the unit's officers; the portal (like the public stream) never
    sees them."""
    return not StepAction(action).is_public


# ---------------------------------------------------------------------------------- the record


class Fact(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DocumentFact(Fact):
    document_type: str
    file_name: str
    content_type: str
    size_bytes: int = 0

    @classmethod
    def of(cls, document: DocumentRef) -> DocumentFact:
        return cls(
            document_type=document.document_type,
            file_name=document.file_name,
            content_type=document.content_type,
            size_bytes=document.size_bytes,
        )


class SubmissionFact(Fact):
    event_id: str
    procedure_code: str
    unit_code: str
    channel: Channel
    owner_name: str
    owner_kind: ApplicantKind
    documents: list[DocumentFact] = Field(default_factory=list)
    fee_vnd: int = 0
    submitted_at: AwareDatetime


class StepFact(Fact):
    id: str = Field(description="The source event's id: the portal's step id")
    at: AwareDatetime
    action: PublicStep
    state: DossierState
    previous_state: DossierState | None = None
    due_at: datetime | None = None
    actor: str | None = None
    unit_code: str | None = None
    note: str | None = None
    requested_documents: list[str] = Field(default_factory=list)
    result_document: DocumentFact | None = None


class PaymentFact(Fact):
    id: str
    at: AwareDatetime
    amount_vnd: int
    transaction_id: str
    provider: str


class SupplyFact(Fact):
    id: str
    at: AwareDatetime
    documents: list[DocumentFact]


class WithdrawalFact(Fact):
    id: str
    at: AwareDatetime
    reason: str | None = None


class DossierRecord(Fact):
    """Everything known about one dossier, as stored (`portal_dossiers`, `_id` = dossier code)."""

    dossier_code: str = Field(alias="_id")
    submission: SubmissionFact | None = None
    steps: list[StepFact] = Field(default_factory=list)
    payments: list[PaymentFact] = Field(default_factory=list)
    supplies: list[SupplyFact] = Field(default_factory=list)
    withdrawals: list[WithdrawalFact] = Field(default_factory=list)
    seq: int = Field(default=0, description="Bumped by every applied event")

    def ordered_steps(self) -> list[StepFact]:
        """Steps in time order; steps of one instant keep their arrival order (stable sort)."""
        return sorted(self.steps, key=lambda step: step.at)


# ---------------------------------------------------------------- events -> facts (pure mapping)


def submission_fact(event: DossierSubmitted, event_id: str) -> SubmissionFact:
    return SubmissionFact(
        event_id=event_id,
        procedure_code=event.procedure_code,
        unit_code=event.unit_code,
        channel=event.channel,
        owner_name=event.applicant.name,
        owner_kind=event.applicant.kind,
        documents=[DocumentFact.of(d) for d in event.documents],
        fee_vnd=event.fee_vnd,
        submitted_at=event.occurred_at,
    )


def submission_step(event: DossierSubmitted, event_id: str) -> StepFact | None:
    """The first progress step of an online dossier: its submission (state 1). A paper dossier's
    first step is processing's `receive` (state 2), announced on the processed topic."""
    if event.channel != Channel.ONLINE:
        return None
    return StepFact(
        id=event_id,
        at=event.occurred_at,
        action=SUBMIT_ACTION,
        state=DossierState.SUBMITTED,
        actor="applicant",
        unit_code=event.unit_code,
    )


def step_fact(event: DossierProcessed, event_id: str) -> StepFact | None:
    """A processing step, or None for the unit's internal deadline warnings."""
    if is_internal_step(event.action):
        return None
    return StepFact(
        id=event_id,
        at=event.occurred_at,
        action=PublicStep.of(event.action),
        state=event.state,
        previous_state=event.previous_state,
        due_at=event.due_at,
        actor=event.actor,
        unit_code=event.unit_code,
        note=event.note,
        requested_documents=list(event.requested_documents),
        result_document=DocumentFact.of(event.result_document) if event.result_document else None,
    )


def payment_fact(event: DossierPaid, event_id: str) -> PaymentFact:
    return PaymentFact(
        id=event_id,
        at=event.occurred_at,
        amount_vnd=event.amount_vnd,
        transaction_id=event.transaction_id,
        provider=event.provider,
    )


def supply_fact(event: DossierSupplemented, event_id: str) -> SupplyFact:
    return SupplyFact(
        id=event_id, at=event.occurred_at, documents=[DocumentFact.of(d) for d in event.documents]
    )


def withdrawal_fact(event: DossierWithdrawn, event_id: str) -> WithdrawalFact:
    return WithdrawalFact(id=event_id, at=event.occurred_at, reason=event.reason)


# ----------------------------------------------------------------------- the portal's messages

PortalDate = str  # `yyyyMMddHHmmss`, validated by the field patterns below


class PortalModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    def payload(self) -> dict[str, object]:
        """The JSON body sent to the portal: portal field names, absent values left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SubmittedDocument(PortalModel):
    document_type: str = Field(alias="MaGiayTo")
    file_name: str = Field(alias="TenTepDinhKem")
    content_type: str = Field(alias="DinhDang")
    size_bytes: int = Field(alias="KichThuoc", ge=0)
    supplemented: Literal[0, 1] = Field(alias="BoSung", description="1: sent as a supplement")


class FeePayment(PortalModel):
    amount_vnd: int = Field(alias="SoTien", gt=0)
    paid_at: PortalDate = Field(alias="NgayThanhToan", pattern=PORTAL_DATE_PATTERN)
    transaction_id: str = Field(alias="MaGiaoDich")
    provider: str = Field(alias="KenhThanhToan")


class Fee(PortalModel):
    name: str = Field(alias="TenPhiLePhi")
    amount_vnd: int = Field(alias="MucPhi", ge=0)
    paid: Literal[0, 1] = Field(alias="DaThanhToan")
    payments: list[FeePayment] = Field(alias="CacLanThanhToan", default_factory=list)


class Supplement(PortalModel):
    requested_at: PortalDate = Field(alias="NgayYeuCauBoSung", pattern=PORTAL_DATE_PATTERN)
    requested_documents: list[str] = Field(alias="GiayToYeuCau", default_factory=list)
    reason: str | None = Field(alias="LyDo", default=None)
    old_due: PortalDate | None = Field(
        alias="NgayHenTraTruoc", default=None, pattern=PORTAL_DATE_PATTERN
    )
    received_at: PortalDate | None = Field(
        alias="NgayTiepNhanBoSung", default=None, pattern=PORTAL_DATE_PATTERN
    )
    new_due: PortalDate | None = Field(
        alias="NgayHenTraMoi", default=None, pattern=PORTAL_DATE_PATTERN
    )


class ResultDocument(PortalModel):
    document_type: str = Field(alias="MaGiayTo")
    name: str = Field(alias="TenGiayTo")
    content_type: str = Field(alias="DinhDang")


class DossierMessage(PortalModel):
    """The dossier as it stands; the portal upserts it by `MaHoSo`."""

    dossier_code: str = Field(alias="MaHoSo", pattern=DOSSIER_CODE_PATTERN)
    procedure_code: str = Field(alias="MaTTHC", min_length=1)
    procedure_name: str | None = Field(alias="TenTTHC", default=None)
    field_code: str | None = Field(alias="MaLinhVuc", default=None)
    field_name: str | None = Field(alias="TenLinhVuc", default=None)
    owner_name: str = Field(alias="ChuHoSo", min_length=1)
    owner_type: Literal[1, 2] = Field(alias="LoaiDoiTuong")
    submitted_at: PortalDate = Field(alias="NgayNopHoSo", pattern=PORTAL_DATE_PATTERN)
    received_at: PortalDate | None = Field(
        alias="NgayTiepNhan", default=None, pattern=PORTAL_DATE_PATTERN
    )
    due_at: PortalDate | None = Field(alias="NgayHenTra", default=None, pattern=PORTAL_DATE_PATTERN)
    state: int = Field(alias="TrangThaiHoSo", ge=1, le=10)
    finished_at: PortalDate | None = Field(
        alias="NgayKetThucXuLy", default=None, pattern=PORTAL_DATE_PATTERN
    )
    returned_at: PortalDate | None = Field(
        alias="NgayTra", default=None, pattern=PORTAL_DATE_PATTERN
    )
    channel: int = Field(alias="KenhThucHien", ge=1, le=3)
    unit_code: str = Field(alias="DonViXuLy", min_length=1)
    documents: list[SubmittedDocument] = Field(alias="TaiLieuNop", default_factory=list)
    fees: list[Fee] = Field(alias="DanhSachLePhi", default_factory=list)
    supplements: list[Supplement] = Field(alias="DanhSachHoSoBoSung", default_factory=list)
    results: list[ResultDocument] = Field(alias="DanhSachGiayToKetQua", default_factory=list)


class StepMessage(PortalModel):
    """One progress step; the portal upserts it by (`MaHoSo`, `MaBuoc`)."""

    dossier_code: str = Field(alias="MaHoSo", pattern=DOSSIER_CODE_PATTERN)
    step_id: str = Field(alias="MaBuoc", min_length=1, max_length=100)
    officer: str = Field(alias="NguoiXuLy", min_length=1)
    at: PortalDate = Field(alias="ThoiDiemXuLy", pattern=PORTAL_DATE_PATTERN)
    department: str = Field(alias="PhongBanXuLy", min_length=1)
    content: str = Field(alias="NoiDungXuLy", min_length=1, max_length=CONTENT_MAX_LENGTH)
    state: int = Field(alias="TrangThai", ge=1, le=10)


# ------------------------------------------------------------------------- facts -> messages

_FINISHED = (DossierState.PROCESSED, DossierState.STOPPED, DossierState.NOT_RECEIVED)


def _entered(step: StepFact, states: Iterable[DossierState]) -> bool:
    return step.state in states and step.previous_state != step.state


def _is_receipt(step: StepFact) -> bool:
    return _entered(step, (DossierState.RECEIVED,)) or (
        step.state == DossierState.IN_PROCESSING and step.previous_state == DossierState.SUBMITTED
    )


def dossier_message(record: DossierRecord) -> DossierMessage:
    """The dossier message of a record that has its submission (raises ValueError otherwise)."""
    submission = record.submission
    if submission is None:
        raise ValueError(f"{record.dossier_code}: the submission is not known yet")
    steps = record.ordered_steps()
    online = submission.channel == Channel.ONLINE
    if steps:
        state = steps[-1].state
    else:
        state = DossierState.SUBMITTED if online else DossierState.RECEIVED

    received = next((s.at for s in steps if _is_receipt(s)), None)
    if received is None and not online:
        received = submission.submitted_at  # paper: received when recorded at the counter
    due = next((s.due_at for s in reversed(steps) if s.due_at is not None), None)
    finished = next((s.at for s in steps if _entered(s, _FINISHED)), None)
    returned = next((s.at for s in steps if _entered(s, (DossierState.RESULT_RETURNED,))), None)
    unit = next((s.unit_code for s in reversed(steps) if s.unit_code), submission.unit_code)

    return DossierMessage(
        dossier_code=record.dossier_code,
        procedure_code=submission.procedure_code,
        owner_name=submission.owner_name,
        owner_type=OWNER_TYPE_CODES[submission.owner_kind],
        submitted_at=portal_time(submission.submitted_at),
        received_at=_optional_time(received),
        due_at=_optional_time(due),
        state=int(state),
        finished_at=_optional_time(finished),
        returned_at=_optional_time(returned),
        channel=int(submission.channel),
        unit_code=unit,
        documents=_documents(submission, record.supplies),
        fees=_fees(submission, record.payments),
        supplements=_supplements(steps),
        results=[
            ResultDocument(
                document_type=s.result_document.document_type,
                name=s.result_document.file_name,
                content_type=s.result_document.content_type,
            )
            for s in steps
            if s.result_document is not None
        ],
    )


def _documents(
    submission: SubmissionFact, supplies: Sequence[SupplyFact]
) -> list[SubmittedDocument]:
    def document(fact: DocumentFact, supplemented: Literal[0, 1]) -> SubmittedDocument:
        return SubmittedDocument(
            document_type=fact.document_type,
            file_name=fact.file_name,
            content_type=fact.content_type,
            size_bytes=fact.size_bytes,
            supplemented=supplemented,
        )

    documents = [document(d, 0) for d in submission.documents]
    for supply in sorted(supplies, key=lambda s: s.at):
        documents.extend(document(d, 1) for d in supply.documents)
    return documents


def _fees(submission: SubmissionFact, payments: Sequence[PaymentFact]) -> list[Fee]:
    if submission.fee_vnd <= 0 and not payments:
        return []
    ordered = sorted(payments, key=lambda p: p.at)
    paid = sum(p.amount_vnd for p in ordered)
    return [
        Fee(
            name=FEE_NAME,
            amount_vnd=submission.fee_vnd,
            paid=1 if ordered and paid >= submission.fee_vnd else 0,
            payments=[
                FeePayment(
                    amount_vnd=p.amount_vnd,
                    paid_at=portal_time(p.at),
                    transaction_id=p.transaction_id,
                    provider=p.provider,
                )
                for p in ordered
            ],
        )
    ]


def _supplements(steps: Sequence[StepFact]) -> list[Supplement]:
    """Each supplement request with the appointment date in force before it and the one set
    when the complete supplement arrived (the clock restarts or resumes, DOMAIN.md §4 R7)."""
    supplements: list[Supplement] = []
    due_in_force: datetime | None = None
    open_request: dict[str, object] | None = None
    for step in steps:
        if step.action is PublicStep.REQUEST_SUPPLEMENT:
            if open_request is not None:
                supplements.append(Supplement(**open_request))
            open_request = {
                "requested_at": portal_time(step.at),
                "requested_documents": list(step.requested_documents),
                "reason": step.note,
                "old_due": _optional_time(due_in_force),
            }
        elif step.action is PublicStep.SUPPLEMENT_RECEIVED and open_request is not None:
            open_request["received_at"] = portal_time(step.at)
            open_request["new_due"] = _optional_time(step.due_at)
            supplements.append(Supplement(**open_request))
            open_request = None
        if step.due_at is not None:
            due_in_force = step.due_at
    if open_request is not None:
        supplements.append(Supplement(**open_request))
    return supplements


def step_message(dossier_code: str, step: StepFact, fallback_unit: str) -> StepMessage:
    label = ACTION_LABELS.get(step.action, step.action)
    content = f"{label}: {step.note}" if step.note else label
    if len(content) > CONTENT_MAX_LENGTH:
        content = content[: CONTENT_MAX_LENGTH - 1] + "…"
    actor = step.actor or SYSTEM_ACTOR
    return StepMessage(
        dossier_code=dossier_code,
        step_id=step.id,
        officer=ACTOR_LABELS.get(actor, actor),
        at=portal_time(step.at),
        department=step.unit_code or fallback_unit,
        content=content,
        state=int(step.state),
    )

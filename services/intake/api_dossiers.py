"""Dossier API: online submission, counter recording, receipts, tracking, supplements and
withdrawal. Citizens act on a dossier with its code plus the secret printed on the receipt."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from services.intake.domain.receipt import ReceiptData, render_receipt_html
from services.intake.metrics import CITIZEN_ACTIONS
from services.intake.protection import client_address
from services.intake.runtime import SOURCE, IntakeRuntime, Runtime
from services.intake.submission import (
    CounterSubmissionForm,
    SubmissionForm,
    SubmissionReceipt,
    UploadedFile,
    check_documents,
    fingerprint,
    hash_secret,
    masked_applicant,
    now,
    parse_form_json,
    rejected,
    store_documents,
    submit,
)
from shared.auth import Role, Staff, ensure_same_unit, require_roles
from shared.catalogue import TimeUnit
from shared.cloudevents import wrap
from shared.events import Channel, DossierState, DossierSupplemented, DossierWithdrawn
from shared.http import Problem
from shared.topics import DOSSIER_SUPPLEMENTED_TOPIC, DOSSIER_WITHDRAWN_TOPIC

router = APIRouter(prefix="/api/v1", tags=["dossiers"])

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

SUBMISSION_DOC = """Multipart form: a part named `dossier` holding the JSON described by the
schema `SubmissionForm` (procedure, applicant, contact, form fields), and one file part per
document, named by the document's code in the procedure (see `GET /api/v1/procedures/{code}`).
Send an `Idempotency-Key` header (a UUID): a retried request returns the first response."""


async def read_multipart(
    request: Request, runtime: IntakeRuntime
) -> tuple[bytes, list[UploadedFile]]:
    settings = runtime.settings
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise rejected(
            "not-multipart",
            415,
            "Sai định dạng yêu cầu (unsupported media type)",
            "Send multipart/form-data with a `dossier` JSON part and the files.",
        )
    try:
        form = await request.form(
            max_files=settings.max_files, max_fields=10, max_part_size=settings.max_json_bytes
        )
    except Exception as exc:  # python-multipart and Starlette raise several kinds
        raise rejected(
            "bad-multipart", 400, "Dữ liệu gửi lên không đọc được (malformed multipart)", str(exc)
        ) from None
    raw = form.get("dossier")
    if raw is None or isinstance(raw, UploadFile):
        raw_bytes = await raw.read() if isinstance(raw, UploadFile) else None
        if raw_bytes is None:
            raise rejected(
                "invalid-dossier",
                422,
                "Thiếu phần dữ liệu hồ sơ (missing dossier part)",
                "The multipart form needs a `dossier` part with the JSON of the dossier.",
            )
    else:
        raw_bytes = raw.encode()
    files: list[UploadedFile] = []
    for name, value in form.multi_items():
        if name == "dossier":
            continue
        if not isinstance(value, UploadFile):
            raise rejected(
                "unexpected-field",
                422,
                "Trường dữ liệu không hợp lệ (unexpected field)",
                f"Part {name!r} must be a file named by its document code.",
            )
        data = await value.read(settings.max_file_bytes + 1)
        if len(data) > settings.max_file_bytes:
            raise rejected(
                "attachment-too-large",
                413,
                "Tệp đính kèm quá lớn (file too large)",
                f"{value.filename}: larger than {settings.max_file_bytes} bytes.",
                document_type=name,
            )
        files.append(UploadedFile(document_type=name, file_name=value.filename or name, data=data))
    if sum(len(f.data) for f in files) > settings.max_dossier_bytes:
        raise rejected(
            "dossier-too-large",
            413,
            "Hồ sơ quá lớn (dossier too large)",
            f"The files add up to more than {settings.max_dossier_bytes} bytes.",
        )
    return raw_bytes, files


def _idempotency(
    key: str | None, scope: str, raw: bytes, files: list[UploadedFile]
) -> tuple[str, str] | None:
    if key is None:
        return None
    if not 8 <= len(key) <= 128:
        raise rejected(
            "bad-idempotency-key",
            400,
            "Idempotency-Key không hợp lệ",
            "The Idempotency-Key header must be 8 to 128 characters (a UUID is a good choice).",
        )
    return f"{scope}:{key}", fingerprint(raw, files)


@router.post(
    "/dossiers",
    status_code=201,
    response_model=SubmissionReceipt,
    description=SUBMISSION_DOC,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["dossier"],
                        "properties": {
                            "dossier": {"type": "string", "description": "SubmissionForm as JSON"}
                        },
                        "additionalProperties": {"type": "string", "format": "binary"},
                    }
                }
            },
            "required": True,
        }
    },
)
async def submit_online(
    request: Request,
    runtime: Runtime,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Submit a dossier online (levels 3 and 4)."""
    runtime.limits.check_submission(client_address(request))
    raw, files = await read_multipart(request, runtime)
    form = parse_form_json(raw, SubmissionForm)
    status, body = await submit(
        runtime,
        form,
        files,
        channel=Channel.ONLINE,
        received_at=now(),
        idempotency=_idempotency(idempotency_key, "online", raw, files),
    )
    return JSONResponse(body, status_code=status)


CounterOfficer = Annotated[Staff, Depends(require_roles(Role.counter_officer, Role.admin))]


@router.post(
    "/counter/dossiers",
    status_code=201,
    response_model=SubmissionReceipt,
    tags=["counter"],
    description="Record a dossier handed in at the counter or received by post (counter "
    "officers). " + SUBMISSION_DOC,
)
async def record_at_counter(
    request: Request,
    runtime: Runtime,
    staff: CounterOfficer,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    raw, files = await read_multipart(request, runtime)
    form = parse_form_json(raw, CounterSubmissionForm)
    assert isinstance(form, CounterSubmissionForm)
    received_at = form.received_at or now()
    if received_at > now():
        raise rejected(
            "future-receipt",
            422,
            "Thời điểm tiếp nhận không hợp lệ (receipt time in the future)",
            "received_at cannot be in the future.",
        )
    status, body = await submit(
        runtime,
        form,
        files,
        channel=form.channel,
        received_at=received_at,
        idempotency=_idempotency(idempotency_key, f"counter:{staff.subject}", raw, files),
    )
    return JSONResponse(body, status_code=status)


# ---------------------------------------------------------------------- citizen access


async def dossier_for_citizen(
    code: str,
    request: Request,
    runtime: Runtime,
    secret: Annotated[str | None, Query(max_length=100, description="From the receipt")] = None,
    x_tracking_secret: Annotated[str | None, Header(max_length=100)] = None,
) -> dict[str, Any]:
    """The dossier, if the secret matches; wrong secrets are throttled per client, and an unknown
    code answers exactly like a wrong secret so that codes cannot be enumerated."""
    client = client_address(request)
    runtime.limits.check_tracking(client)
    given = x_tracking_secret or secret
    dossier = await runtime.store.get_dossier(code)
    expected = dossier["tracking_secret_sha256"] if dossier else hash_secret("-")
    if given is None or not hmac.compare_digest(hash_secret(given), expected) or dossier is None:
        runtime.limits.record_wrong_secret(client)
        raise Problem(
            404,
            "Không tìm thấy hồ sơ (dossier not found)",
            "No dossier with this code and secret. Check both on your receipt.",
        )
    return dossier


CitizenDossier = Annotated[dict[str, Any], Depends(dossier_for_citizen)]


class HistoryStep(BaseModel):
    at: datetime
    state: int
    state_label: str
    action: str
    unit_code: str | None = None
    note: str | None = None


class InboxMessage(BaseModel):
    at: datetime
    title: str | None
    body: str


class DossierStatus(BaseModel):
    dossier_code: str
    procedure_code: str
    procedure_name: str
    unit_code: str
    channel: int
    submitted_at: datetime
    state: int
    state_label: str
    due_at: datetime | None = None
    overdue: bool = False
    citizen_action: str | None = Field(default=None, description="What you must do now")
    requested_documents: list[str] = Field(default_factory=list)
    result_available: bool = False
    history: list[HistoryStep]
    inbox: list[InboxMessage]


@router.get("/dossiers/{code}", response_model=DossierStatus, tags=["tracking"])
async def track(dossier: CitizenDossier) -> DossierStatus:
    """State, due date, what to do, history and messages of a dossier (code + secret)."""
    status = dossier["status"]
    return DossierStatus(
        dossier_code=dossier["_id"],
        procedure_code=dossier["procedure_code"],
        procedure_name=dossier["procedure_name"],
        unit_code=dossier["unit_code"],
        channel=dossier["channel"],
        submitted_at=dossier["submitted_at"],
        state=status["state"],
        state_label=STATE_LABELS[status["state"]],
        due_at=status.get("due_at"),
        overdue=bool(status.get("overdue")),
        citizen_action=status.get("citizen_action"),
        requested_documents=status.get("requested_documents") or [],
        result_available=status.get("result_document") is not None,
        history=[
            HistoryStep(
                at=step["at"],
                state=step["state"],
                state_label=STATE_LABELS[step["state"]],
                action=step["action"],
                unit_code=step.get("unit_code"),
                note=step.get("note"),
            )
            for step in dossier.get("history", [])
        ],
        inbox=[
            InboxMessage(at=m["at"], title=m.get("title"), body=m["body"])
            for m in dossier.get("inbox", [])
        ],
    )


async def receipt_data(runtime: IntakeRuntime, dossier: dict[str, Any], secret: str) -> ReceiptData:
    base = runtime.settings.public_base_url.rstrip("/")
    procedure = await runtime.store.get_procedure(dossier["procedure_code"])
    names = {d.code: d.name for d in procedure.documents} if procedure else {}
    time = procedure.processing_time if procedure else None
    return ReceiptData(
        dossier_code=dossier["_id"],
        procedure_code=dossier["procedure_code"],
        procedure_name=dossier["procedure_name"],
        unit_name=dossier["unit_name"],
        applicant_name=dossier["applicant"]["name"],
        applicant_identifier_masked=masked_applicant(dossier),
        channel=Channel(dossier["channel"]),
        submitted_at=dossier["submitted_at"],
        appointment_at=dossier["status"].get("due_at"),
        documents=[
            (names.get(d["document_type"], d["document_type"]), d["file_name"])
            for d in dossier["documents"]
        ],
        fee_vnd=dossier["fee_vnd"],
        tracking_url=f"{base}/api/v1/dossiers/{dossier['_id']}?secret={secret}",
        agency_name=runtime.settings.agency_name,
        processing_time_text=f"{time.value:g} {TIME_UNIT_LABELS[time.unit]}" if time else None,
    )


TIME_UNIT_LABELS = {
    TimeUnit.WORKING_DAYS: "ngày làm việc",
    TimeUnit.CALENDAR_DAYS: "ngày",
    TimeUnit.WORKING_HOURS: "giờ làm việc",
    TimeUnit.MONTHS: "tháng",
}


def _secret_of(request: Request) -> str:
    return request.headers.get("x-tracking-secret") or request.query_params.get("secret", "")


@router.get("/dossiers/{code}/receipt", response_model=ReceiptData, tags=["tracking"])
async def receipt(dossier: CitizenDossier, request: Request, runtime: Runtime) -> ReceiptData:
    """The receipt (Form 01 content) as JSON."""
    return await receipt_data(runtime, dossier, _secret_of(request))


@router.get("/dossiers/{code}/receipt.html", response_class=HTMLResponse, tags=["tracking"])
async def receipt_html(dossier: CitizenDossier, request: Request, runtime: Runtime) -> HTMLResponse:
    """The printable receipt (Form 01) with a QR code of the tracking link."""
    data = await receipt_data(runtime, dossier, _secret_of(request))
    return HTMLResponse(render_receipt_html(data))


class WithdrawalRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


@router.post("/dossiers/{code}/withdrawal", status_code=202, tags=["tracking"])
async def withdraw(
    dossier: CitizenDossier, body: WithdrawalRequest, runtime: Runtime
) -> dict[str, Any]:
    """Ask to withdraw the dossier; an officer of the unit confirms it."""
    state = dossier["status"]["state"]
    if state not in WITHDRAWABLE_STATES or dossier["status"].get("withdrawal_requested"):
        raise Problem(
            409,
            "Không thể rút hồ sơ ở trạng thái này (cannot withdraw now)",
            f"The dossier is in state {state} ({STATE_LABELS[state]}).",
        )
    event = DossierWithdrawn(dossier_code=dossier["_id"], occurred_at=now(), reason=body.reason)
    applied = await runtime.store.update_dossier(
        dossier["_id"],
        {"$set": {"status.withdrawal_requested": True}},
        [(runtime.topic(DOSSIER_WITHDRAWN_TOPIC), wrap(event, SOURCE))],
        expected_state=state,
    )
    if not applied:
        raise Problem(409, "Hồ sơ vừa thay đổi (dossier changed)", "Reload and try again.")
    runtime.dossier_relay.poke(dossier["_id"])
    CITIZEN_ACTIONS.labels("withdrawal").inc()
    return {"dossier_code": dossier["_id"], "withdrawal_requested": True}


@router.post("/dossiers/{code}/supplements", status_code=202, tags=["tracking"])
async def supplement(dossier: CitizenDossier, request: Request, runtime: Runtime) -> dict[str, Any]:
    """Send the documents a supplement request asked for (multipart: one file part per document
    code, and an optional `note` text part)."""
    status = dossier["status"]
    if status["state"] != DossierState.SUPPLEMENT_REQUESTED or status.get("supplement_sent"):
        raise Problem(
            409,
            "Hồ sơ không có yêu cầu bổ sung (no supplement requested)",
            "Supplements are accepted only while a supplement request is open.",
        )
    procedure = await runtime.store.get_procedure(dossier["procedure_code"])
    assert procedure is not None
    form = await request.form(max_files=runtime.settings.max_files, max_fields=2)
    files = [
        UploadedFile(
            name, value.filename or name, await value.read(runtime.settings.max_file_bytes + 1)
        )
        for name, value in form.multi_items()
        if isinstance(value, UploadFile)
    ]
    if not files:
        raise rejected(
            "missing-document",
            422,
            "Thiếu tệp bổ sung (no files)",
            "Attach the requested documents.",
        )
    requested = set(status.get("requested_documents") or [])
    # Only the requested documents count as mandatory here.
    narrowed = procedure.model_copy(
        update={
            "documents": [
                d.model_copy(update={"mandatory": d.code in requested}) for d in procedure.documents
            ]
        }
    )
    checked = check_documents(narrowed, files, runtime.settings.max_file_bytes)
    refs = await store_documents(runtime, checked)
    note = form.get("note")
    event = DossierSupplemented(
        dossier_code=dossier["_id"],
        occurred_at=now(),
        documents=refs,
        note=note if isinstance(note, str) else None,
    )
    applied = await runtime.store.update_dossier(
        dossier["_id"],
        {
            "$set": {"status.supplement_sent": True},
            "$push": {"documents": {"$each": [r.model_dump(mode="json") for r in refs]}},
        },
        [(runtime.topic(DOSSIER_SUPPLEMENTED_TOPIC), wrap(event, SOURCE))],
        expected_state=DossierState.SUPPLEMENT_REQUESTED,
    )
    if not applied:
        await runtime.store.delete_attachments(r.storage_id for r in refs)
        raise Problem(409, "Hồ sơ vừa thay đổi (dossier changed)", "Reload and try again.")
    runtime.dossier_relay.poke(dossier["_id"])
    CITIZEN_ACTIONS.labels("supplement").inc()
    return {"dossier_code": dossier["_id"], "documents": [r.document_type for r in refs]}


@router.get("/counter/dossiers/{code}", tags=["counter"])
async def dossier_for_staff(code: str, runtime: Runtime, staff: CounterOfficer) -> dict[str, Any]:
    """The full dossier record, for counter officers of its unit."""
    dossier = await runtime.store.get_dossier(code)
    if dossier is None:
        raise Problem(404, "Không tìm thấy hồ sơ (dossier not found)", f"No dossier {code}.")
    ensure_same_unit(staff, dossier["unit_code"], service="intake", action="read_dossier")
    dossier.pop("tracking_secret_sha256", None)
    return {"dossier_code": dossier.pop("_id"), **dossier}

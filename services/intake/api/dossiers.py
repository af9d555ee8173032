"""Dossier API: online submission, counter recording, receipts, tracking, supplements,
withdrawal and the satisfaction rating. Citizens act on a dossier with its code plus the secret
printed on the receipt."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from services.intake.adapters.protection import client_address
from services.intake.api.dependencies import (
    CitizenDossier,
    CounterOfficer,
    Intake,
    Limits,
    citizen_problems,
)
from services.intake.api.problems import ANSWERS, rejected
from services.intake.domain.attachments import safe_file_name
from services.intake.domain.dossier import RATABLE_STATES, STATE_LABELS
from services.intake.domain.errors import InvalidDossier, NoFiles
from services.intake.domain.receipt import ReceiptData, render_receipt_html
from services.intake.domain.submission import (
    CounterSubmissionForm,
    SubmissionForm,
    SubmissionReceipt,
    UploadedFile,
    fingerprint,
)
from services.intake.service.dossiers import now
from services.intake.settings import IntakeSettings
from shared.contracts.events import Channel, DocumentRef
from shared.runtime.auth import Role, Staff, ensure_same_unit, require_roles
from shared.runtime.http import content_disposition, inline_schema, problems

router = APIRouter(prefix="/api/v1", tags=["dossiers"], responses=problems(503))
INVALID_DOSSIER = ANSWERS[InvalidDossier]

SUBMISSION_DOC = """Multipart form: a part named `dossier` holding the JSON described by the
schema `SubmissionForm` (procedure, applicant, contact, form fields), and one file part per
document, named by the document's code in the procedure (see `GET /api/v1/procedures/{code}`).
Send an `Idempotency-Key` header (a UUID): a retried request returns the first response."""
IDEMPOTENCY_KEY_DOC = (
    "8 to 128 characters (a UUID): a retried request with the same key and content answers the "
    "first response; the same key with other content is refused (422)"
)


def submission_body(form: type[SubmissionForm]) -> dict[str, Any]:
    """The OpenAPI request body of a submission: the JSON part `dossier` and the files."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["dossier"],
                        "properties": {
                            "dossier": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": inline_schema(form),
                                "description": f"`{form.__name__}` as JSON",
                            }
                        },
                        "additionalProperties": {
                            "type": "string",
                            "format": "binary",
                            "description": "A document's file, the part named by its code",
                        },
                    }
                }
            },
        }
    }


SUBMISSION_NOTES = {
    400: "A malformed multipart body, or an `Idempotency-Key` that is not 8 to 128 characters",
    409: "A request with the same `Idempotency-Key` is still being answered: retry shortly",
    413: "A file over the per-file limit, files adding up to more than the dossier limit",
    415: "The body is not `multipart/form-data`",
    422: "The `dossier` part is missing or invalid (`errors` lists the fields), the procedure is "
    "unknown or not offered online, a document is missing or not of the procedure, a file is "
    "refused (type or content), or the `Idempotency-Key` was used for other content",
    503: "Also when the day's 9,999 dossier numbers are used up "
    "(`urn:dvc:problem:daily-numbers-exhausted`; `Retry-After`: the seconds until midnight in "
    "Viet Nam)",
}


async def read_multipart(
    request: Request, settings: IntakeSettings
) -> tuple[bytes, list[UploadedFile]]:
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


def parse_form_json(raw: str | bytes, model: type[SubmissionForm]) -> SubmissionForm:
    """Validate the `dossier` part; errors become a 422 problem listing each field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {"location": ["dossier", *map(str, e["loc"])], "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise rejected(
            "invalid-dossier",
            INVALID_DOSSIER.status,
            INVALID_DOSSIER.title,
            "The dossier part does not match the expected schema.",
            errors=errors,
        ) from None
    except json.JSONDecodeError:
        raise rejected(
            "invalid-dossier",
            INVALID_DOSSIER.status,
            INVALID_DOSSIER.title,
            "The dossier part is not JSON.",
        ) from None


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


# A receipt carries the tracking secret: no cache (browser, proxy) may keep it.
NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/dossiers",
    status_code=201,
    response_model=SubmissionReceipt,
    description=SUBMISSION_DOC,
    responses=problems(400, 409, 413, 415, 422, 429, 503, notes=SUBMISSION_NOTES),
    openapi_extra=submission_body(SubmissionForm),
)
async def submit_online(
    request: Request,
    intake: Intake,
    limits: Limits,
    idempotency_key: Annotated[str | None, Header(description=IDEMPOTENCY_KEY_DOC)] = None,
) -> JSONResponse:
    """Submit a dossier online (levels 3 and 4)."""
    limits.check_submission(client_address(request))
    raw, files = await read_multipart(request, intake.settings)
    form = parse_form_json(raw, SubmissionForm)
    status, body = await intake.submissions.submit(
        form,
        files,
        channel=Channel.ONLINE,
        received_at=now(),
        idempotency=_idempotency(idempotency_key, "online", raw, files),
    )
    return JSONResponse(body, status_code=status, headers=NO_STORE)


@router.post(
    "/counter/dossiers",
    status_code=201,
    response_model=SubmissionReceipt,
    tags=["counter"],
    description="Record a dossier handed in at the counter or received by post (counter "
    "officers, for the unit that receives the procedure: the token's `unit` claim must be the "
    "procedure's `unit_code` in the catalogue; administrators for any unit). `received_at` "
    "may lie at most `counter_backdate_days` days in the past (setting "
    "`DVC_INTAKE_COUNTER_BACKDATE_DAYS`, default 3), never in the future. " + SUBMISSION_DOC,
    responses=problems(
        400,
        401,
        403,
        409,
        413,
        415,
        422,
        503,
        notes={
            **SUBMISSION_NOTES,
            403: "Not a counter officer or administrator, or the procedure is received by "
            "another unit than the officer's (`urn:dvc:problem:other-unit`, with "
            "`procedure_unit`)",
            422: SUBMISSION_NOTES[422] + "; `received_at` in the future "
            "(`urn:dvc:problem:future-receipt`) or further back than the backdating window "
            "(`urn:dvc:problem:backdated-receipt`, with `earliest` and `backdate_days`)",
        },
    ),
    openapi_extra=submission_body(CounterSubmissionForm),
)
async def record_at_counter(
    request: Request,
    intake: Intake,
    staff: CounterOfficer,
    idempotency_key: Annotated[str | None, Header(description=IDEMPOTENCY_KEY_DOC)] = None,
) -> JSONResponse:
    raw, files = await read_multipart(request, intake.settings)
    form = parse_form_json(raw, CounterSubmissionForm)
    assert isinstance(form, CounterSubmissionForm)
    status, body = await intake.submissions.record_at_counter(
        form,
        files,
        officer=staff,
        now=now(),
        idempotency=_idempotency(idempotency_key, f"counter:{staff.subject}", raw, files),
    )
    return JSONResponse(body, status_code=status, headers=NO_STORE)


# ---------------------------------------------------------------------- citizen access


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


class RatingOut(BaseModel):
    score: int = Field(ge=1, le=5)
    at: datetime


class DossierStatus(BaseModel):
    dossier_code: str
    procedure_code: str
    procedure_name: str
    unit_code: str
    level: int = Field(
        description="Online service level of the procedure (4: pay and get the result online)"
    )
    fee_vnd: int = 0
    channel: int
    submitted_at: datetime
    state: int
    state_label: str
    due_at: datetime | None = None
    overdue: bool = False
    citizen_action: str | None = Field(default=None, description="What you must do now")
    requested_documents: list[str] = Field(default_factory=list)
    result_available: bool = False
    paid: bool = Field(default=False, description="The fee was paid online")
    ratable: bool = Field(
        default=False, description="Finished (state 8 or 10) and not rated yet: it may be rated"
    )
    rating: RatingOut | None = None
    history: list[HistoryStep]
    inbox: list[InboxMessage]


@router.get(
    "/dossiers/{code}",
    response_model=DossierStatus,
    tags=["tracking"],
    responses=citizen_problems(),
)
async def track(dossier: CitizenDossier) -> DossierStatus:
    """State, due date, what to do, history and messages of a dossier (code + secret)."""
    status = dossier.status
    return DossierStatus(
        dossier_code=dossier.code,
        procedure_code=dossier.procedure_code,
        procedure_name=dossier.procedure_name,
        unit_code=dossier.unit_code,
        level=dossier.level,
        fee_vnd=int(status.amount_vnd or dossier.fee_vnd),
        channel=dossier.channel,
        submitted_at=dossier.submitted_at,
        state=status.state,
        state_label=dossier.state_label,
        due_at=status.due_at,
        overdue=status.overdue,
        citizen_action=status.citizen_action,
        requested_documents=status.requested_documents or [],
        result_available=status.result_document is not None,
        paid=status.paid,
        ratable=dossier.rating is None and dossier.state in RATABLE_STATES,
        rating=RatingOut(score=dossier.rating.score, at=dossier.rating.at)
        if dossier.rating
        else None,
        history=[
            HistoryStep(
                at=step.at,
                state=step.state,
                state_label=STATE_LABELS[step.state],
                action=step.action,
                unit_code=step.unit_code,
                note=step.note,
            )
            for step in dossier.history
        ],
        inbox=[InboxMessage(at=m.at, title=m.title, body=m.body) for m in dossier.inbox],
    )


def _secret_of(request: Request) -> str:
    return request.headers.get("x-tracking-secret") or request.query_params.get("secret", "")


@router.get(
    "/dossiers/{code}/receipt",
    response_model=ReceiptData,
    tags=["tracking"],
    responses=citizen_problems(),
)
async def receipt(dossier: CitizenDossier, request: Request, intake: Intake) -> ReceiptData:
    """The receipt (Form 01 content) as JSON."""
    return await intake.dossiers.receipt(dossier, _secret_of(request))


@router.get(
    "/dossiers/{code}/receipt.html",
    response_class=HTMLResponse,
    tags=["tracking"],
    responses=citizen_problems(),
)
async def receipt_html(dossier: CitizenDossier, request: Request, intake: Intake) -> HTMLResponse:
    """The printable receipt (Form 01) with a QR code of the tracking link."""
    data = await intake.dossiers.receipt(dossier, _secret_of(request))
    return HTMLResponse(render_receipt_html(data))


class WithdrawalRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


@router.post(
    "/dossiers/{code}/withdrawal",
    status_code=202,
    tags=["tracking"],
    responses=citizen_problems(
        400, 409, 413, notes={409: "Not possible in the dossier's state, or it changed meanwhile"}
    ),
)
async def withdraw(
    dossier: CitizenDossier, body: WithdrawalRequest, intake: Intake
) -> dict[str, Any]:
    """Ask to withdraw the dossier; an officer of the unit confirms it."""
    await intake.dossiers.request_withdrawal(dossier, body.reason)
    return {"dossier_code": dossier.code, "withdrawal_requested": True}


@router.post(
    "/dossiers/{code}/supplements",
    status_code=202,
    tags=["tracking"],
    responses=citizen_problems(
        400,
        409,
        413,
        notes={
            400: "A malformed multipart body, or more parts than allowed",
            409: "No supplement was requested, or the dossier changed meanwhile",
            413: "A file over the per-file limit",
            422: "No file attached, a document not requested, or a file refused (type, content)",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"note": {"type": "string", "description": "Optional"}},
                        "additionalProperties": {
                            "type": "string",
                            "format": "binary",
                            "description": "A requested document's file, named by its code",
                        },
                    }
                }
            },
        }
    },
)
async def supplement(dossier: CitizenDossier, request: Request, intake: Intake) -> dict[str, Any]:
    """Send the documents a supplement request asked for (multipart: one file part per document
    code, and an optional `note` text part)."""
    dossier.check_supplement_open()  # before reading the body
    settings = intake.settings
    form = await request.form(max_files=settings.max_files, max_fields=2)
    files = [
        UploadedFile(name, value.filename or name, await value.read(settings.max_file_bytes + 1))
        for name, value in form.multi_items()
        if isinstance(value, UploadFile)
    ]
    if not files:
        raise NoFiles("Attach the requested documents.")
    note = form.get("note")
    refs = await intake.dossiers.supplement(dossier, files, note if isinstance(note, str) else None)
    return {"dossier_code": dossier.code, "documents": [r.document_type for r in refs]}


class RatingRequest(BaseModel):
    score: int = Field(ge=1, le=5, description="1 (not satisfied at all) to 5 (very satisfied)")
    comment: str | None = Field(default=None, max_length=2000)


class RatingRecorded(BaseModel):
    dossier_code: str
    score: int
    rated_at: datetime


@router.post(
    "/dossiers/{code}/rating",
    status_code=201,
    response_model=RatingRecorded,
    tags=["tracking"],
    responses=citizen_problems(
        400,
        409,
        413,
        notes={
            409: "Not finished yet (`urn:dvc:problem:not-finished`), or rated already "
            "(`urn:dvc:problem:already-rated`)"
        },
    ),
)
async def rate(dossier: CitizenDossier, body: RatingRequest, intake: Intake) -> RatingRecorded:
    """Rate the service once the dossier is finished (stopped, or its result returned): once
    per dossier; announced on `dvc.dossier.rated.v1`."""
    rating = await intake.dossiers.rate(dossier, body.score, body.comment)
    return RatingRecorded(dossier_code=dossier.code, score=rating.score, rated_at=rating.at)


@router.get(
    "/counter/dossiers/{code}",
    tags=["counter"],
    responses=problems(401, 403, 404, 422, notes={403: "Or the dossier is of another unit"}),
)
async def dossier_for_staff(code: str, intake: Intake, staff: CounterOfficer) -> dict[str, Any]:
    """The full dossier record, for counter officers of its unit."""
    record = await intake.dossiers.record_for_staff(code)
    ensure_same_unit(staff, record["unit_code"], service="intake", action="read_dossier")
    return {"dossier_code": record.pop("_id"), **record}


# ---------------------------------------------------------------------- unit staff

# Staff who work a unit's dossiers; the unit is checked against the dossier's.
UnitStaff = Annotated[
    Staff,
    Depends(
        require_roles(
            Role.officer,
            Role.unit_head,
            Role.counter_officer,
            Role.admin,
            action="read_dossier",
        )
    ),
]


class StaffDossier(BaseModel):
    """A dossier as submitted, for staff of its unit: who applied, how to reach them, the form
    and the documents (each downloadable by its `storage_id`)."""

    dossier_code: str
    procedure_code: str
    procedure_name: str
    unit_code: str
    unit_name: str
    level: int
    channel: int
    applicant: dict[str, Any]
    contact: dict[str, Any]
    form: dict[str, Any]
    documents: list[DocumentRef]
    fee_vnd: int
    submitted_at: datetime
    state: int
    state_label: str


@router.get(
    "/staff/dossiers/{code}",
    response_model=StaffDossier,
    tags=["staff"],
    responses=problems(401, 403, 404, 422, notes={403: "Or the dossier is of another unit"}),
)
async def dossier_for_unit_staff(code: str, intake: Intake, staff: UnitStaff) -> StaffDossier:
    """The dossier as submitted (applicant, contact, form data, documents), for officers, unit
    heads and counter officers of its unit, and administrators."""
    dossier = await intake.dossiers.for_staff(staff, code)
    return StaffDossier(
        dossier_code=dossier.code,
        procedure_code=dossier.procedure_code,
        procedure_name=dossier.procedure_name,
        unit_code=dossier.unit_code,
        unit_name=dossier.unit_name,
        level=dossier.level,
        channel=dossier.channel,
        applicant=dossier.applicant,
        contact=dossier.contact,
        form=dossier.form,
        documents=dossier.documents,
        fee_vnd=dossier.fee_vnd,
        submitted_at=dossier.submitted_at,
        state=dossier.state,
        state_label=dossier.state_label,
    )


@router.get(
    "/staff/dossiers/{code}/documents/{storage_id}",
    response_class=Response,
    tags=["staff"],
    responses={
        200: {
            "description": "The document's bytes, with its type and file name",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problems(
            401,
            403,
            404,
            422,
            notes={403: "Or the dossier is of another unit", 404: "Or no such document"},
        ),
    },
)
async def document_for_unit_staff(
    code: str, storage_id: str, intake: Intake, staff: UnitStaff
) -> Response:
    """One document of the dossier (as submitted or supplemented), for staff of its unit."""
    document, data = await intake.dossiers.document_for_staff(staff, code, storage_id)
    return Response(
        data,
        media_type=document.content_type,
        headers={
            "Content-Disposition": content_disposition(safe_file_name(document.file_name)),
            "Cache-Control": "no-store",
        },
    )

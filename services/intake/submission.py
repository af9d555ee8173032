"""The submission use case: validate everything, store the files, issue the code, persist the
dossier with its `DossierSubmitted` event in one write, and answer with the receipt.

Nothing is half-stored: every check runs before anything is written; files are stored before the
code is drawn (so a storage failure leaves no gap in the daily sequence) and removed again if the
dossier itself cannot be written.

A code is drawn only for a dossier that will be stored: the form, the files, the procedure and the
Idempotency-Key are checked first, and the complete dossier is built with a stand-in number and
encoded for the database before the real number is drawn. Only an infrastructure failure of the
final insert can still leave a number unused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from services.intake.domain.applicants import Applicant, ContactInput, mask_identifier
from services.intake.domain.attachments import (
    CONTENT_TYPES,
    AttachmentError,
    check_attachment,
    safe_file_name,
)
from services.intake.domain.dossier_code import MAX_DAILY_SEQUENCE, format_code, sequence_key
from services.intake.domain.form_data import check_form_data
from services.intake.metrics import REJECTED_REQUESTS, SUBMISSIONS
from services.intake.runtime import SOURCE, IntakeRuntime
from services.intake.store import IdempotencyConflict
from shared.catalogue import Procedure, RequiredDocument
from shared.cloudevents import wrap
from shared.events import (
    Applicant as EventApplicant,
)
from shared.events import (
    Channel,
    Contact,
    DocumentRef,
    DossierState,
    DossierSubmitted,
)
from shared.http import Problem
from shared.topics import DOSSIER_SUBMITTED_TOPIC


class SubmissionForm(BaseModel):
    """The `dossier` part of a submission (JSON); files travel as parts named by document code."""

    model_config = ConfigDict(extra="forbid")

    procedure_code: str = Field(min_length=1, max_length=40)
    applicant: Applicant
    contact: ContactInput
    form: Annotated[dict[str, Any], AfterValidator(check_form_data)] = Field(
        default_factory=dict, description="The procedure's form fields"
    )


class CounterSubmissionForm(SubmissionForm):
    """A dossier handed in at the counter or received by post, recorded by a counter officer."""

    channel: Literal[Channel.COUNTER, Channel.POST] = Channel.COUNTER
    received_at: AwareDatetime | None = Field(
        default=None, description="When it was handed in (default: now)"
    )


@dataclass(frozen=True)
class UploadedFile:
    document_type: str
    file_name: str
    data: bytes


class DocumentReceipt(BaseModel):
    document_type: str
    name: str
    file_name: str
    size_bytes: int


class SubmissionReceipt(BaseModel):
    dossier_code: str
    tracking_secret: str = Field(description="Shown once: with the code, it opens the tracking")
    tracking_url: str
    receipt_url: str
    receipt_html_url: str
    state: int
    channel: int
    submitted_at: datetime
    procedure_code: str
    procedure_name: str
    unit_code: str
    documents: list[DocumentReceipt]
    fee_vnd: int


def fingerprint(form_json: bytes, files: Sequence[UploadedFile]) -> str:
    """What makes two requests "the same" for an Idempotency-Key."""
    digest = hashlib.sha256(form_json)
    for upload in sorted(files, key=lambda f: (f.document_type, f.file_name)):
        digest.update(upload.document_type.encode())
        digest.update(hashlib.sha256(upload.data).digest())
    return digest.hexdigest()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def rejected(reason: str, status: int, title: str, detail: str, **extensions: Any) -> Problem:
    REJECTED_REQUESTS.labels("intake", reason).inc()
    return Problem(status, title, detail, type_=f"urn:dvc:problem:{reason}", **extensions)


async def submit(
    runtime: IntakeRuntime,
    form: SubmissionForm,
    files: Sequence[UploadedFile],
    *,
    channel: Channel,
    received_at: datetime,
    idempotency: tuple[str, str] | None,
) -> tuple[int, dict[str, Any]]:
    """Returns (status code, receipt body). `idempotency` is (key, request fingerprint)."""
    procedure = await runtime.store.get_procedure(form.procedure_code)
    if procedure is None:
        raise rejected(
            "unknown-procedure",
            422,
            "Thủ tục không tồn tại (unknown procedure)",
            f"No procedure {form.procedure_code!r} in the catalogue.",
        )
    if channel is Channel.ONLINE and not procedure.accepts_online:
        raise rejected(
            "not-online",
            422,
            "Thủ tục chưa cung cấp trực tuyến (not offered online)",
            f"Procedure {procedure.code} is at level {procedure.level}; only levels 3 and 4 accept "
            "online dossiers. Please submit it at the counter.",
        )
    documents = check_documents(procedure, files, runtime.settings.max_file_bytes)

    if idempotency is not None:
        try:
            previous = await runtime.store.reserve_idempotency_key(*idempotency)
        except IdempotencyConflict as conflict:
            raise _idempotency_problem(conflict.reason) from None
        if previous is not None:
            return previous.status_code, previous.body
    try:
        status, body = await _persist(runtime, procedure, form, documents, channel, received_at)
    except BaseException:
        if idempotency is not None:
            await runtime.store.release_idempotency_key(idempotency[0])
        raise
    if idempotency is not None:
        await runtime.store.complete_idempotency_key(idempotency[0], status, body)
    return status, body


@dataclass(frozen=True)
class CheckedDocument:
    required: RequiredDocument
    upload: UploadedFile
    file_format: str


def check_documents(
    procedure: Procedure, files: Sequence[UploadedFile], max_file_bytes: int
) -> list[CheckedDocument]:
    """Every mandatory document present, every file of an expected kind, type and size."""
    required = {document.code: document for document in procedure.documents}
    unknown = sorted({f.document_type for f in files} - set(required))
    if unknown:
        raise rejected(
            "unknown-document",
            422,
            "Giấy tờ không thuộc thủ tục (unexpected document)",
            f"Procedure {procedure.code} asks for no document {', '.join(unknown)}.",
            expected=sorted(required),
        )
    given = {f.document_type for f in files}
    missing = [d for d in procedure.documents if d.mandatory and d.code not in given]
    if missing:
        raise rejected(
            "missing-document",
            422,
            "Thiếu giấy tờ bắt buộc (missing mandatory document)",
            "Missing: " + "; ".join(f"{d.code} — {d.name}" for d in missing),
            missing=[d.code for d in missing],
        )
    checked = []
    for upload in files:
        document = required[upload.document_type]
        try:
            file_format = check_attachment(
                file_name=upload.file_name,
                data=upload.data,
                allowed_formats=document.formats,
                max_bytes=max_file_bytes,
            )
        except AttachmentError as error:
            status = 413 if error.code == "too_large" else 422
            raise rejected(
                f"attachment-{error.code}".replace("_", "-"),
                status,
                "Tệp đính kèm không hợp lệ (invalid attachment)",
                error.message,
                document_type=upload.document_type,
                file_name=safe_file_name(upload.file_name),
            ) from None
        checked.append(CheckedDocument(document, upload, file_format))
    return checked


def _idempotency_problem(reason: str) -> Problem:
    if reason == "mismatch":
        return rejected(
            "idempotency-key-reused",
            422,
            "Khóa Idempotency-Key đã dùng cho yêu cầu khác",
            "This Idempotency-Key was used with a different request; use a new key.",
        )
    return Problem(
        409,
        "Yêu cầu đang được xử lý (request in progress)",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        headers={"Retry-After": "1"},
    )


async def _persist(
    runtime: IntakeRuntime,
    procedure: Procedure,
    form: SubmissionForm,
    documents: Sequence[CheckedDocument],
    channel: Channel,
    received_at: datetime,
) -> tuple[int, dict[str, Any]]:
    store, settings = runtime.store, runtime.settings
    refs: list[DocumentRef] = []
    try:
        refs = await store_documents(runtime, documents)
        secret = secrets.token_urlsafe(18)

        def build(sequence: int) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
            code = format_code(settings.agency_id, received_at, sequence)
            event = DossierSubmitted(
                dossier_code=code,
                occurred_at=received_at,
                procedure_code=procedure.code,
                unit_code=procedure.unit_code,
                level=procedure.level,
                channel=channel,
                applicant=EventApplicant(
                    kind=form.applicant.kind,
                    name=form.applicant.name,
                    identifier=form.applicant.identifier,
                ),
                contact=Contact(email=form.contact.email, phone=form.contact.phone),
                documents=refs,
                form=form.form,
                fee_vnd=procedure.total_fee_vnd,
            )
            state = DossierState.SUBMITTED if channel is Channel.ONLINE else DossierState.RECEIVED
            dossier = {
                "_id": code,
                "procedure_code": procedure.code,
                "procedure_name": procedure.name,
                "unit_code": procedure.unit_code,
                "unit_name": procedure.unit_name,
                "level": procedure.level,
                "channel": int(channel),
                "applicant": form.applicant.model_dump(mode="json"),
                "contact": form.contact.model_dump(mode="json"),
                "form": form.form,
                "documents": [r.model_dump(mode="json") for r in refs],
                "fee_vnd": procedure.total_fee_vnd,
                "submitted_at": received_at,
                "tracking_secret_sha256": hash_secret(secret),
                "status": {"state": int(state), "updated_at": received_at},
                "history": [{"at": received_at, "state": int(state), "action": "submit"}],
                "inbox": [],
            }
            return dossier, [(runtime.topic(DOSSIER_SUBMITTED_TOPIC), wrap(event, SOURCE))]

        # The number is the only part that is not known yet: build the dossier with a stand-in
        # and prove it can be stored, so that nothing a client sent fails after the draw.
        try:
            store.check_storable(*build(MAX_DAILY_SEQUENCE))
        except ValueError as error:  # `Unstorable`, or an event the contract refuses
            raise rejected(
                "invalid-dossier",
                422,
                "Dữ liệu hồ sơ không hợp lệ (invalid dossier data)",
                f"The dossier cannot be stored: {error}",
            ) from None
        dossier = await store.insert_with_next_code(
            sequence_key(settings.agency_id, received_at), build
        )
    except BaseException:
        await store.delete_attachments(r.storage_id for r in refs)
        raise
    runtime.dossier_relay.poke(dossier["_id"])
    SUBMISSIONS.labels(procedure.unit_code, str(procedure.level), str(int(channel))).inc()
    receipt = build_receipt(runtime, dossier, secret, documents)
    return 201, receipt.model_dump(mode="json")


async def store_documents(
    runtime: IntakeRuntime, documents: Sequence[CheckedDocument]
) -> list[DocumentRef]:
    """Store checked files; on failure remove those stored so far and re-raise."""
    refs: list[DocumentRef] = []
    try:
        for checked in documents:
            upload = checked.upload
            file_name = safe_file_name(upload.file_name)
            content_type = CONTENT_TYPES.get(checked.file_format, "application/octet-stream")
            storage_id = await runtime.store.store_attachment(
                upload.data,
                file_name=file_name,
                content_type=content_type,
                metadata={"document_type": upload.document_type},
            )
            refs.append(
                DocumentRef(
                    document_type=upload.document_type,
                    file_name=file_name,
                    content_type=content_type,
                    size_bytes=len(upload.data),
                    storage_id=storage_id,
                    sha256=hashlib.sha256(upload.data).hexdigest(),
                )
            )
    except BaseException:
        await runtime.store.delete_attachments(r.storage_id for r in refs)
        raise
    return refs


def build_receipt(
    runtime: IntakeRuntime,
    dossier: dict[str, Any],
    secret: str,
    documents: Sequence[CheckedDocument],
) -> SubmissionReceipt:
    base = runtime.settings.public_base_url.rstrip("/")
    code = dossier["_id"]
    return SubmissionReceipt(
        dossier_code=code,
        tracking_secret=secret,
        tracking_url=f"{base}/api/v1/dossiers/{code}?secret={secret}",
        receipt_url=f"{base}/api/v1/dossiers/{code}/receipt?secret={secret}",
        receipt_html_url=f"{base}/api/v1/dossiers/{code}/receipt.html?secret={secret}",
        state=dossier["status"]["state"],
        channel=dossier["channel"],
        submitted_at=dossier["submitted_at"],
        procedure_code=dossier["procedure_code"],
        procedure_name=dossier["procedure_name"],
        unit_code=dossier["unit_code"],
        documents=[
            DocumentReceipt(
                document_type=d.required.code,
                name=d.required.name,
                file_name=safe_file_name(d.upload.file_name),
                size_bytes=len(d.upload.data),
            )
            for d in documents
        ],
        fee_vnd=dossier["fee_vnd"],
    )


def now() -> datetime:
    return datetime.now(UTC)


def masked_applicant(dossier: dict[str, Any]) -> str:
    return mask_identifier(dossier["applicant"].get("identifier"))


def parse_form_json(raw: str | bytes, model: type[SubmissionForm]) -> SubmissionForm:
    """Validate the `dossier` part; errors become a 422 problem listing each field."""
    from pydantic import ValidationError

    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {"location": ["dossier", *map(str, e["loc"])], "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise rejected(
            "invalid-dossier",
            422,
            "Dữ liệu hồ sơ không hợp lệ (invalid dossier data)",
            "The dossier part does not match the expected schema.",
            errors=errors,
        ) from None
    except json.JSONDecodeError:
        raise rejected(
            "invalid-dossier",
            422,
            "Dữ liệu hồ sơ không hợp lệ (invalid dossier data)",
            "The dossier part is not JSON.",
        ) from None

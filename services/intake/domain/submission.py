"""What a submission is made of and the checks it must pass before anything is stored (pure):
the form, the uploaded files against the procedure's documents, the request fingerprint for
Idempotency-Key, and the receipt given back."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from services.intake.domain.applicants import Applicant, ContactInput
from services.intake.domain.attachments import AttachmentError, check_attachment, safe_file_name
from services.intake.domain.errors import (
    InvalidAttachment,
    MissingDocument,
    NotOfferedOnline,
    UnexpectedDocument,
)
from services.intake.domain.form_data import check_form_data
from shared.contracts.catalogue import Procedure, RequiredDocument
from shared.contracts.events import Channel


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


@dataclass(frozen=True)
class CheckedDocument:
    required: RequiredDocument
    upload: UploadedFile
    file_format: str


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


def check_channel(procedure: Procedure, channel: Channel) -> None:
    """Only levels 3 and 4 accept online dossiers."""
    if channel is Channel.ONLINE and not procedure.accepts_online:
        raise NotOfferedOnline(
            f"Procedure {procedure.code} is at level {procedure.level}; only levels 3 and 4 accept "
            "online dossiers. Please submit it at the counter."
        )


def check_documents(
    procedure: Procedure, files: Sequence[UploadedFile], max_file_bytes: int
) -> list[CheckedDocument]:
    """Every mandatory document present, every file of an expected kind, type and size."""
    required = {document.code: document for document in procedure.documents}
    unknown = sorted({f.document_type for f in files} - set(required))
    if unknown:
        raise UnexpectedDocument(
            f"Procedure {procedure.code} asks for no document {', '.join(unknown)}.",
            expected=sorted(required),
        )
    given = {f.document_type for f in files}
    missing = [d for d in procedure.documents if d.mandatory and d.code not in given]
    if missing:
        raise MissingDocument(
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
            raise InvalidAttachment(
                error.code,
                error.message,
                document_type=upload.document_type,
                file_name=safe_file_name(upload.file_name),
            ) from None
        checked.append(CheckedDocument(document, upload, file_format))
    return checked

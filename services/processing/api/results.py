"""Result documents: an officer issues the signed result (4 → 9) with its file; officers of the
case's unit and intake (service to service) fetch the bytes back."""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from services.processing.api.cases import answer
from services.processing.api.dependencies import (
    IdempotencyKey,
    Officer,
    ResultReader,
    Results,
    domain_problems,
)
from services.processing.api.schemas import CaseDetail
from services.processing.domain.lifecycle import Action
from services.processing.service.results import DEFAULT_FILE_NAME, ResultUpload
from services.processing.settings import ProcessingSettings
from shared.runtime.http import Problem, content_disposition, problems

# The defaults of the settings `result_content_types` and `max_result_bytes`, which a deployment may
# change: the document states the defaults.
_TYPES = ProcessingSettings.model_fields["result_content_types"].get_default(
    call_default_factory=True
)
_MAX_BYTES = ProcessingSettings.model_fields["max_result_bytes"].get_default()
ACCEPTED = ", ".join(_TYPES)

router = APIRouter(prefix="/api/v1", tags=["officer"], responses=problems(401, 403, 503))


@router.post(
    "/cases/{code}/result",
    responses=problems(
        400,
        404,
        409,
        413,
        415,
        422,
        notes={
            400: "The multipart body cannot be read",
            413: f"The file is larger than `max_result_bytes` ({_MAX_BYTES} by default)",
            415: f"The file's type is not one of `result_content_types` ({ACCEPTED} by default)",
            422: "Or the file is empty",
        },
    ),
    openapi_extra={
        "requestBody": {
            "content": {"multipart/form-data": {"encoding": {"file": {"contentType": ACCEPTED}}}}
        }
    },
)
async def issue_result(
    response: Response,
    staff: Officer,
    results: Results,
    code: str,
    file: Annotated[UploadFile, File(description="The signed result document")],
    note: Annotated[str | None, Form(max_length=2000)] = None,
    document_type: Annotated[str, Form(min_length=1, max_length=40)] = "ket_qua",
    key: IdempotencyKey = None,
) -> CaseDetail:
    """Issue the result (4 → 9): the document is kept in processing's store, its reference
    travels in the event so intake can deliver it online (level 4). The file part's own
    `Content-Type` must be an accepted type (by default: PDF, XML, JPEG, PNG or a PKCS #7
    signature); it must not be empty."""
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    if content_type not in results.content_types:
        raise Problem(
            415,
            "Định dạng tệp không được chấp nhận (unsupported file type)",
            f"Accepted: {', '.join(results.content_types)}.",
        )
    data = await file.read(results.max_bytes + 1)
    if len(data) > results.max_bytes:
        raise Problem(413, "Tệp quá lớn (file too large)", f"At most {results.max_bytes}.")
    if not data:
        raise Problem(422, "Tệp rỗng (empty file)")
    file_name = (file.filename or DEFAULT_FILE_NAME).rsplit("/", 1)[-1][:200]
    with domain_problems(Action.ISSUE_RESULT.value):
        result = await results.issue(
            staff,
            code,
            ResultUpload(file_name, content_type, data),
            note=note,
            document_type=document_type,
            idempotency_key=key,
        )
    return answer(result, response)


@router.get(
    "/results/{storage_id}",
    response_class=Response,
    responses={
        200: {
            "description": "The document's bytes, with its content type (one of the accepted "
            "types: the defaults are listed) and file name",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in _TYPES},
        },
        **problems(404, 422),
    },
)
async def download_result(staff: ResultReader, results: Results, storage_id: str) -> Response:
    """The bytes of an issued result, for officers of the case's unit, and for intake with its
    own service token (role `result_reader`, audience `dvc-processing`: good for nothing else;
    services never read each other's database)."""
    with domain_problems():
        found = await results.download(staff, storage_id)
    return Response(
        found.data,
        media_type=found.content_type,
        headers={"Content-Disposition": content_disposition(found.file_name)},
    )

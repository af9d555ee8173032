"""Applying online: the applicant's details (step 1), the documents and review (step 2), the
submission to intake, and the receipt.

Step 2 carries step 1's values in hidden fields and the files, so the files travel once, from the
browser through the portal to intake, and the portal keeps nothing. Each step-2 form carries its
own Idempotency-Key: a double click or a resubmitted form gets the first dossier's receipt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from services.portal.adapters.intake import OutgoingFile
from services.portal.api.dependencies import Client, Portal, PortalWeb
from services.portal.api.qr import qr_svg
from services.portal.api.uploads import ReceivedForm, UnreadableForm, read_form
from services.portal.domain.application import (
    FIELD_LABELS,
    KINDS,
    Application,
    ChosenFile,
    check_files,
    document_field,
    field_errors_from_intake,
    validate,
    vietnamese_part,
)
from services.portal.domain.errors import (
    IntakeUnavailable,
    NotFound,
    SubmissionRefused,
    TooManyRequests,
)
from services.portal.domain.labels import accepts_online
from shared.contracts.catalogue import Procedure

router = APIRouter(include_in_schema=False)

SESSION_EXPIRED = (
    "Phiên làm việc đã hết hạn hoặc trình duyệt đã xóa cookie. Thông tin bạn nhập vẫn được giữ "
    "dưới đây; vui lòng kiểm tra và gửi lại."
)
INTAKE_DOWN = (
    "Hệ thống tiếp nhận hồ sơ tạm thời không phản hồi. Thông tin bạn nhập vẫn được giữ; "
    "vui lòng thử lại sau ít phút."
)
TOO_MANY_SUBMISSIONS = (
    "Bạn đã gửi quá nhiều hồ sơ trong thời gian ngắn. Vui lòng thử lại sau ít phút."
)
CONFIRM_FIELD = "confirm"
KEY_FIELD = "idempotency_key"


async def _online_procedure(portal: PortalWeb, code: str, client: str) -> Procedure:
    procedure = await portal.service.procedure(code, client)
    if not accepts_online(procedure.level):
        raise NotFound(code)  # levels 1-2: the procedure page tells where to go instead
    return procedure


def _details_page(
    request: Request,
    portal: PortalWeb,
    procedure: Procedure,
    application: Application,
    errors: dict[str, str],
    *,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return portal.render(
        request,
        "apply_details.html",
        {
            "procedure": procedure,
            "application": application,
            "errors": errors,
            "labels": FIELD_LABELS,
            "kinds": KINDS,
            "notice": notice,
        },
        status_code=status_code,
        private=True,
    )


def _documents_page(
    request: Request,
    portal: PortalWeb,
    procedure: Procedure,
    application: Application,
    *,
    idempotency_key: str,
    errors: dict[str, str] | None = None,
    chosen: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return portal.render(
        request,
        "apply_documents.html",
        {
            "procedure": procedure,
            "application": application,
            "labels": FIELD_LABELS,
            "kinds": KINDS,
            "errors": errors or {},
            "chosen": chosen or {},
            "notice": notice,
            "idempotency_key": idempotency_key,
            "document_field": document_field,
            "max_file_bytes": portal.settings.max_file_bytes,
            "max_dossier_bytes": portal.settings.max_dossier_bytes,
        },
        status_code=status_code,
        private=True,
    )


@router.get("/thu-tuc/{code}/nop-ho-so")
async def details_form(request: Request, code: str, portal: Portal, client: Client) -> Response:
    procedure = await _online_procedure(portal, code, client)
    return _details_page(request, portal, procedure, Application(), {})


@router.post("/thu-tuc/{code}/nop-ho-so")
async def details_submitted(
    request: Request, code: str, portal: Portal, client: Client
) -> Response:
    """Step 1 sent: errors -> the same form with messages; all well -> step 2."""
    procedure = await _online_procedure(portal, code, client)
    form = await _small_form(request)
    application = Application.from_form(form)
    if not portal.csrf_valid(request, _text(form, "csrf_token")):
        return _details_page(
            request, portal, procedure, application, {}, notice=SESSION_EXPIRED, status_code=400
        )
    errors = validate(application)
    if errors or _text(form, "action") == "edit":
        return _details_page(
            request, portal, procedure, application, errors, status_code=422 if errors else 200
        )
    return _documents_page(
        request, portal, procedure, application, idempotency_key=str(uuid.uuid4())
    )


@router.post("/thu-tuc/{code}/nop-ho-so/gui")
async def submit(request: Request, code: str, portal: Portal, client: Client) -> Response:
    """Step 2 sent: check, forward to intake, then the receipt (Post/Redirect/Get)."""
    procedure = await _online_procedure(portal, code, client)
    settings = portal.settings
    try:
        received = await read_form(
            request.headers.get("content-type", ""),
            request.stream(),
            max_file_bytes=settings.max_file_bytes,
            max_files=min(settings.max_files, len(procedure.documents) + 1),
            hard_limit=2 * settings.max_dossier_bytes + 1024 * 1024,
        )
    except UnreadableForm:
        return portal.render(
            request,
            "error.html",
            {
                "title": "Không đọc được dữ liệu gửi lên",
                "message": "Dữ liệu gửi lên không hợp lệ hoặc quá lớn. Vui lòng quay lại và "
                "gửi lại hồ sơ; tổng dung lượng các tệp của một hồ sơ không vượt quá "
                f"{settings.max_dossier_bytes // (1024 * 1024)} MB.",
            },
            status_code=400,
        )
    try:
        return await _submit(request, portal, procedure, received, client)
    finally:
        received.close()


async def _submit(
    request: Request,
    portal: PortalWeb,
    procedure: Procedure,
    received: ReceivedForm,
    client: str,
) -> Response:
    settings = portal.settings
    fields = received.fields
    application = Application.from_form(fields)
    key = fields.get(KEY_FIELD, "")
    if not _valid_key(key):
        key = str(uuid.uuid4())
    documents = {d.code for d in procedure.documents}
    uploads = [f for f in received.files if f.field_name.removeprefix("document_") in documents]
    chosen = {f.field_name: f.file_name for f in uploads}

    def again(errors: dict[str, str], notice: str | None = None, status: int = 422) -> Response:
        return _documents_page(
            request,
            portal,
            procedure,
            application,
            idempotency_key=key,
            errors=errors,
            chosen=chosen,
            notice=notice,
            status_code=status,
        )

    if not portal.csrf_valid(request, fields.get("csrf_token")):
        return again({}, SESSION_EXPIRED, 400)
    if errors := validate(application):
        return _details_page(request, portal, procedure, application, errors, status_code=422)
    files = [
        ChosenFile(f.field_name.removeprefix("document_"), f.file_name, f.size_bytes)
        for f in uploads
    ]
    errors = check_files(
        procedure,
        files,
        max_file_bytes=settings.max_file_bytes,
        max_total_bytes=settings.max_dossier_bytes,
    )
    if fields.get(CONFIRM_FIELD) != "yes":
        errors[CONFIRM_FIELD] = "Đánh dấu ô cam đoan trước khi nộp hồ sơ."
    if errors:
        return again(errors)
    outgoing = [
        OutgoingFile(f.field_name.removeprefix("document_"), f.file_name, f.content_type, f.stream)
        for f in uploads
    ]
    try:
        receipt = await portal.service.submit(
            procedure, application, outgoing, idempotency_key=key, client=client
        )
    except IntakeUnavailable:
        return again({}, INTAKE_DOWN, 503)
    except TooManyRequests:
        return again({}, TOO_MANY_SUBMISSIONS, 429)
    except SubmissionRefused as refused:
        return _refused(request, portal, procedure, application, refused, again)
    response = RedirectResponse("/ho-so/bien-nhan", status_code=303)
    value = portal.cookies.sign(
        {"code": receipt.dossier_code, "secret": receipt.tracking_secret}, "receipt"
    )
    portal.cookies.set(response, portal.cookies.names.receipt, value, settings.receipt_seconds)
    return response


def _refused(
    request: Request,
    portal: PortalWeb,
    procedure: Procedure,
    application: Application,
    refused: SubmissionRefused,
    again: Callable[..., Response],
) -> Response:
    errors = field_errors_from_intake(refused.problem)
    details = {k: v for k, v in errors.items() if not k.startswith("document_")}
    if details:
        return _details_page(request, portal, procedure, application, details, status_code=422)
    if errors:
        return again(errors)
    if refused.reason == "idempotency-key-reused":
        return again(
            {},
            "Hồ sơ này đã được nộp trước đó với các tệp khác. Để nộp một hồ sơ mới, vui lòng "
            "bắt đầu lại từ trang thủ tục.",
        )
    detail = vietnamese_part(str(refused.problem.get("detail") or refused.problem.get("title")))
    return again({}, f"Hệ thống tiếp nhận từ chối hồ sơ: {detail}")


@router.get("/ho-so/bien-nhan")
async def receipt(request: Request, portal: Portal, client: Client) -> Response:
    """The receipt, shown once: the cookie with the secret is cleared as it is shown."""
    names = portal.cookies.names
    held = portal.cookies.unsign(
        request.cookies.get(names.receipt), "receipt", portal.settings.receipt_seconds
    )
    if not isinstance(held, dict) or not {"code", "secret"} <= held.keys():
        response = portal.render(
            request,
            "receipt_gone.html",
            {},
            status_code=404,
            private=True,
        )
        portal.cookies.clear(response, names.receipt)
        return response
    code, secret = str(held["code"]), str(held["secret"])
    try:
        data = await portal.service.receipt(code, secret, client)
    except (IntakeUnavailable, TooManyRequests, NotFound):
        data = {"dossier_code": code}  # the code and secret matter most; details can wait
    base = portal.settings.public_base_url.rstrip("/")
    link = f"{base}/tra-cuu/lien-ket/{code}?k={secret}"
    response = portal.render(
        request,
        "receipt.html",
        {"code": code, "secret": secret, "receipt": data, "qr": qr_svg(link)},
        private=True,
    )
    portal.cookies.clear(response, names.receipt)
    return response


async def _small_form(request: Request) -> FormData:
    """A form of text fields only (urlencoded), bounded."""
    return await request.form(max_files=0, max_fields=40, max_part_size=64 * 1024)


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _valid_key(key: str) -> bool:
    try:
        uuid.UUID(key)
    except ValueError:
        return False
    return True

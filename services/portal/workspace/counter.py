"""The counter desk (`/can-bo/mot-cua`, role `counter_officer`): record a dossier handed in at the
counter or received by post, with its files, through intake's `POST /api/v1/counter/dossiers`
and the officer's own token; then print its receipt (Form 01, with the tracking secret and the
QR code of the tracking link), which the applicant takes home.

The applicant's details are checked as on the portal's online form (`domain/application.py`),
intake checks them again and has the last word. The receipt's secret is kept in the officer's
server-side session (never in a URL or cookie), for the receipts of this session only.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from services.portal.api.qr import qr_svg
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
from services.portal.workspace import views
from services.portal.workspace.processing import (
    CaseNotFound,
    Conflict,
    Forbidden,
    NotSignedIn,
    ProcessingRefused,
    ProcessingUnavailable,
)
from services.portal.workspace.routes import HOME, SignedIn, Workspace, WorkspaceDep
from services.portal.workspace.sessions import StaffSession
from services.portal.workspace.staff_apis import UploadPart
from shared.contracts.catalogue import Procedure
from shared.contracts.events import Channel

DESK = f"{HOME}/mot-cua"
COUNTER_ROLES = frozenset({"counter_officer", "admin"})
CHANNELS = {
    str(int(Channel.COUNTER)): "Nộp trực tiếp tại bộ phận một cửa",
    str(int(Channel.POST)): "Nhận qua dịch vụ bưu chính",
}
_PROCEDURE = re.compile(r"^[0-9A-Za-z.\-_]{1,40}$")
_KEY = re.compile(r"^[0-9a-f\-]{36}$")
INTAKE_DOWN = (
    "Hệ thống tiếp nhận tạm thời không phản hồi; hồ sơ chưa được ghi nhận. Vui lòng gửi lại "
    "sau ít phút (các tệp cần chọn lại)."
)
LABELS = {**FIELD_LABELS, "channel": "Hình thức nhận hồ sơ"}

router = APIRouter(include_in_schema=False)


def _desk_officer(session: StaffSession) -> bool:
    return bool(session.profile and session.profile.roles & COUNTER_ROLES)


@router.get(DESK)
async def desk(
    request: Request,
    workspace: WorkspaceDep,
    session: SignedIn,
    procedure_code: Annotated[str | None, Query(alias="thu-tuc", max_length=40)] = None,
) -> Response:
    """Step 1: the procedure (by its code); with it, the dossier's form."""
    if not _desk_officer(session):
        return workspace.error(request, 403)
    wanted = (procedure_code or "").strip()
    if not wanted:
        return _start(request, workspace, session)
    procedure = await _procedure(workspace, request, wanted)
    if procedure is None:
        return _start(
            request,
            workspace,
            session,
            error=f"Không có thủ tục mã “{wanted}” trong danh mục.",
            entered=wanted,
            status_code=404,
        )
    counter = str(int(Channel.COUNTER))
    return _form(request, workspace, session, procedure, Application(), channel=counter)


@router.post(DESK + "/ho-so")
async def record(request: Request, workspace: WorkspaceDep, session: SignedIn) -> Response:
    """Step 2 sent: check, record at intake with the officer's token, then the receipt."""
    if not _desk_officer(session):
        return workspace.error(request, 403)
    settings = workspace.portal.settings
    try:
        form = await request.form(max_files=settings.max_files, max_fields=30)
    except Exception:  # python-multipart and Starlette raise several kinds
        return workspace.error(request, 400)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    if not workspace.portal.csrf_valid(request, fields.get("csrf_token")):
        return workspace.error(request, 400)
    procedure = await _procedure(workspace, request, fields.get("procedure_code", ""))
    if procedure is None:
        return _start(request, workspace, session, error="Vui lòng chọn lại thủ tục.")
    application = Application.from_form(fields)
    channel = fields.get("channel", "")
    key = fields.get("idempotency_key", "")
    key = key if _KEY.match(key) else str(uuid.uuid4())
    errors = validate(application)
    if channel not in CHANNELS:
        errors["channel"] = "Chọn hình thức nhận hồ sơ."
    codes = {d.code for d in procedure.documents}
    uploads: list[tuple[str, UploadFile, bytes]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile) and value.filename:
            code = name.removeprefix("document_")
            if code in codes:
                data = await value.read(settings.max_file_bytes + 1)
                uploads.append((code, value, data))
    chosen = [
        ChosenFile(code, upload.filename or code, len(data)) for code, upload, data in uploads
    ]
    errors |= check_files(
        procedure,
        chosen,
        max_file_bytes=settings.max_file_bytes,
        max_total_bytes=settings.max_dossier_bytes,
    )

    def again(found: dict[str, str], notice: str | None = None, status: int = 422) -> Response:
        return _form(
            request,
            workspace,
            session,
            procedure,
            application,
            channel=channel,
            errors=found,
            notice=notice,
            idempotency_key=key,
            status_code=status,
        )

    if errors:
        return again(errors)
    dossier = {**application.to_intake(procedure.code), "channel": int(channel)}
    token = await workspace.access_token(session, DESK)
    parts = [  # each file part named by its document's code (intake's contract)
        UploadPart(code, upload.filename or code, upload.content_type or "application/pdf", data)
        for code, upload, data in uploads
    ]
    try:
        receipt = await workspace.apis.record_at_counter(
            token, _json(dossier), parts, idempotency_key=key
        )
    except ProcessingUnavailable:
        return again({}, INTAKE_DOWN, 503)
    except NotSignedIn:
        raise
    except Forbidden as refused:  # e.g. a procedure another unit receives
        title = vietnamese_part(str(refused.problem.get("title") or ""))
        return again({}, f"Không được ghi nhận hồ sơ này: {title}", 403)
    except Conflict:  # the same key still being answered: a double click
        return again({}, "Hồ sơ đang được ghi nhận, vui lòng đợi giây lát rồi gửi lại.", 409)
    except (CaseNotFound, ProcessingRefused) as refused:
        found = field_errors_from_intake(refused.problem)
        if found:
            return again(found)
        detail = vietnamese_part(str(refused.problem.get("detail") or refused.problem.get("title")))
        return again({}, f"Hệ thống tiếp nhận từ chối hồ sơ: {detail}")
    code, secret = str(receipt["dossier_code"]), str(receipt["tracking_secret"])
    session.remember_receipt(code, secret)
    return RedirectResponse(f"{DESK}/bien-nhan/{code}", status_code=303)


@router.get(DESK + "/bien-nhan/{code}")
async def receipt(
    request: Request, workspace: WorkspaceDep, session: SignedIn, code: str
) -> Response:
    """The printable receipt of a dossier recorded in this session (with its secret)."""
    if not _desk_officer(session):
        return workspace.error(request, 403)
    secret = session.receipts.get(code) if views.valid_code(code) else None
    if secret is None:
        return workspace.error(request, 404)
    try:
        data = await workspace.portal.service.receipt(code, secret, _client(request))
    except Exception:  # the code and secret matter most; the details can be printed later
        data = {"dossier_code": code}
    base = workspace.portal.settings.public_base_url.rstrip("/")
    link = f"{base}/tra-cuu/lien-ket/{code}?k={secret}"
    return workspace.render(
        request,
        "workspace/counter_receipt.html",
        {
            "code": code,
            "secret": secret,
            "receipt": data,
            "qr": qr_svg(link),
            "channel_labels": views.CHANNEL_LABELS,
        },
        session=session,
    )


# --- helpers --------------------------------------------------------------------------------------


async def _procedure(workspace: Workspace, request: Request, code: str) -> Procedure | None:
    if not _PROCEDURE.match(code):
        return None
    try:
        procedure: Procedure = await workspace.portal.service.procedure(code, _client(request))
    except Exception:  # not found, or the catalogue unavailable: choose again
        return None
    return procedure


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False)


def _start(
    request: Request,
    workspace: Workspace,
    session: StaffSession,
    *,
    error: str | None = None,
    entered: str = "",
    status_code: int = 200,
) -> Response:
    return workspace.render(
        request,
        "workspace/counter.html",
        {
            "procedure": None,
            "procedure_error": error,
            "procedure_entered": entered,
            "recent": list(reversed(session.receipts)),
        },
        status_code=status_code,
        session=session,
    )


def _form(
    request: Request,
    workspace: Workspace,
    session: StaffSession,
    procedure: Procedure,
    application: Application,
    *,
    channel: str,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    idempotency_key: str | None = None,
    status_code: int = 200,
) -> Response:
    settings = workspace.portal.settings
    return workspace.render(
        request,
        "workspace/counter.html",
        {
            "procedure": procedure,
            "application": application,
            "channel": channel,
            "channels": CHANNELS,
            "kinds": KINDS,
            "labels": LABELS,
            "errors": errors or {},
            "notice": notice,
            "document_field": document_field,
            "idempotency_key": idempotency_key or str(uuid.uuid4()),
            "max_file_bytes": settings.max_file_bytes,
            "max_dossier_bytes": settings.max_dossier_bytes,
            "recent": list(reversed(session.receipts)),
        },
        status_code=status_code,
        session=session,
    )

"""What a citizen does on the tracking page, each a plain form (CSRF, no script needed) read with
the tracking session: send a requested supplement, withdraw (after a confirmation step), pay a
level-4 fee (to the payment platform and back to a return page), download the result (streamed
from intake), and rate the service once the dossier is finished.

A refused form comes back on the dossier's page with a Vietnamese message and what was entered
(files excepted, named); a success redirects to the dossier's page (Post/Redirect/Get) with a
short notice chosen by name, never by text in the URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from services.portal.adapters.intake import OutgoingFile
from services.portal.api.apply import INTAKE_DOWN, SESSION_EXPIRED, _small_form, _text
from services.portal.api.dependencies import Client, Portal, PortalWeb
from services.portal.api.tracking import (
    dossier_page,
    held_secret,
    session_over,
    throttled,
    wrong_secret,
)
from services.portal.api.uploads import ReceivedForm, UnreadableForm, read_form
from services.portal.domain.application import vietnamese_part
from services.portal.domain.errors import (
    ActionRefused,
    IntakeUnavailable,
    NotFound,
    TooManyRequests,
)
from services.portal.domain.tracking import (
    MAX_COMMENT,
    MAX_NOTE,
    DossierStatus,
    actions,
    rating_errors,
    state_label,
    withdrawal_errors,
)

router = APIRouter(include_in_schema=False)

CHANGED = (
    "Tình trạng hồ sơ vừa thay đổi nên thao tác này không còn phù hợp. Vui lòng xem tình trạng "
    "mới nhất dưới đây."
)
PAYMENT_DOWN = (
    "Cổng thanh toán tạm thời không phản hồi. Vui lòng thử lại sau ít phút; bạn chưa bị trừ tiền."
)


def _dossier_url(code: str, done: str | None = None) -> str:
    url = f"/ho-so/{quote(code, safe='')}"
    return f"{url}?xong={done}" if done else url


class _Session:
    """The tracking session of one dossier, and its current status."""

    def __init__(self, code: str, secret: str, status: DossierStatus) -> None:
        self.code = code
        self.secret = secret
        self.status = status


async def _open(request: Request, portal: PortalWeb, code: str, client: str) -> _Session | Response:
    """The session and the status, or the page that says why not (session over, wrong secret,
    throttled)."""
    secret = held_secret(request, portal, code)
    if secret is None:
        return session_over(request, portal, code)
    try:
        status = await portal.service.status(code, secret, client)
    except NotFound:
        return wrong_secret(request, portal, code)
    except TooManyRequests as error:
        return throttled(request, portal, code, error.retry_after_seconds)
    return _Session(code, secret, status)


def _refusal_text(refused: ActionRefused) -> str:
    if refused.status == 409:
        return CHANGED
    detail = refused.problem.get("detail") or refused.problem.get("title") or ""
    return f"Hệ thống tiếp nhận từ chối yêu cầu: {vietnamese_part(str(detail))}"


# --- supplement -------------------------------------------------------------------------------


@router.post("/ho-so/{code}/bo-sung")
async def supplement(request: Request, code: str, portal: Portal, client: Client) -> Response:
    opened = await _open(request, portal, code, client)
    if isinstance(opened, Response):
        return opened
    settings = portal.settings
    try:
        received = await read_form(
            request.headers.get("content-type", ""),
            request.stream(),
            max_file_bytes=settings.max_file_bytes,
            max_files=settings.max_files,
            hard_limit=2 * settings.max_dossier_bytes + 1024 * 1024,
        )
    except UnreadableForm:
        return await dossier_page(
            request,
            portal,
            opened.status,
            client,
            notice="Dữ liệu gửi lên không hợp lệ hoặc quá lớn. Vui lòng chọn lại các tệp và "
            "gửi lại.",
            status_code=400,
        )
    try:
        return await _supplement(request, portal, opened, received, client)
    finally:
        received.close()


async def _supplement(
    request: Request, portal: PortalWeb, opened: _Session, received: ReceivedForm, client: str
) -> Response:
    fields = received.fields
    note = (fields.get("note") or "").strip()
    files = [f for f in received.files if f.field_name.startswith("document_")]
    chosen = {f.field_name: f.file_name for f in files}
    entered = {"note": note, "chosen": chosen}

    async def again(
        errors: dict[str, str] | None = None, notice: str | None = None, status: int = 422
    ) -> Response:
        return await dossier_page(
            request,
            portal,
            opened.status,
            client,
            errors=errors,
            notice=notice,
            entered=entered,
            status_code=status,
        )

    if not portal.csrf_valid(request, fields.get("csrf_token")):
        return await again(notice=SESSION_EXPIRED, status=400)
    if not actions(opened.status).supplement:
        return await again(notice=CHANGED, status=409)
    errors: dict[str, str] = {}
    for f in files:
        if f.truncated:
            errors[f.field_name] = (
                f"Tệp “{f.file_name}” lớn hơn giới hạn "
                f"{portal.settings.max_file_bytes // (1024 * 1024) or 1} MB."
            )
    if not files:
        errors["bo-sung"] = "Chọn ít nhất một tệp giấy tờ cần bổ sung."
    if len(note) > MAX_NOTE:
        errors["note"] = f"Ghi chú không quá {MAX_NOTE} ký tự (hiện có {len(note)})."
    if errors:
        return await again(errors)
    outgoing = [
        OutgoingFile(f.field_name.removeprefix("document_"), f.file_name, f.content_type, f.stream)
        for f in files
    ]
    try:
        await portal.service.supplement(opened.code, opened.secret, outgoing, note or None, client)
    except IntakeUnavailable:
        return await again(notice=INTAKE_DOWN, status=503)
    except TooManyRequests as error:
        return throttled(request, portal, opened.code, error.retry_after_seconds)
    except ActionRefused as refused:
        document = refused.problem.get("document_type")
        if refused.status in (413, 422) and isinstance(document, str):
            name = f"document_{document}"
            text = vietnamese_part(str(refused.problem.get("detail") or refused.problem["title"]))
            return await again({name: f"Tệp “{chosen.get(name, '')}” không hợp lệ: {text}"})
        return await again(notice=_refusal_text(refused), status=refused.status)
    return RedirectResponse(_dossier_url(opened.code, "bo-sung"), status_code=303)


# --- withdrawal -------------------------------------------------------------------------------


def _withdraw_page(
    request: Request,
    portal: PortalWeb,
    status: DossierStatus,
    *,
    reason: str = "",
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return portal.render(
        request,
        "withdraw.html",
        {
            "status": status,
            "state_label": state_label(status.state),
            "reason": reason,
            "errors": errors or {},
            "notice": notice,
            "max_note": MAX_NOTE,
        },
        status_code=status_code,
        private=True,
    )


@router.get("/ho-so/{code}/rut-ho-so")
async def withdraw_form(request: Request, code: str, portal: Portal, client: Client) -> Response:
    """The confirmation step: what withdrawing means, an optional reason, a checkbox."""
    opened = await _open(request, portal, code, client)
    if isinstance(opened, Response):
        return opened
    if not actions(opened.status).withdraw:
        return await dossier_page(
            request, portal, opened.status, client, notice=CHANGED, status_code=409
        )
    return _withdraw_page(request, portal, opened.status)


@router.post("/ho-so/{code}/rut-ho-so")
async def withdraw(request: Request, code: str, portal: Portal, client: Client) -> Response:
    opened = await _open(request, portal, code, client)
    if isinstance(opened, Response):
        return opened
    form = await _small_form(request)
    reason = (_text(form, "reason") or "").strip()
    if not portal.csrf_valid(request, _text(form, "csrf_token")):
        return _withdraw_page(
            request,
            portal,
            opened.status,
            reason=reason,
            notice=SESSION_EXPIRED,
            status_code=400,
        )
    if errors := withdrawal_errors(_text(form, "confirm") == "yes", reason):
        return _withdraw_page(
            request, portal, opened.status, reason=reason, errors=errors, status_code=422
        )
    try:
        await portal.service.withdraw(opened.code, opened.secret, reason or None, client)
    except IntakeUnavailable:
        return _withdraw_page(
            request, portal, opened.status, reason=reason, notice=INTAKE_DOWN, status_code=503
        )
    except TooManyRequests as error:
        return throttled(request, portal, opened.code, error.retry_after_seconds)
    except ActionRefused as refused:
        return await dossier_page(
            request,
            portal,
            opened.status,
            client,
            notice=_refusal_text(refused),
            status_code=refused.status,
        )
    return RedirectResponse(_dossier_url(opened.code, "rut-ho-so"), status_code=303)


# --- payment ----------------------------------------------------------------------------------


@router.post("/ho-so/{code}/thanh-toan")
async def pay(request: Request, code: str, portal: Portal, client: Client) -> Response:
    """Start the payment at intake, then the page that sends the citizen to the payment
    platform (a link: the platform is another site, which the CSP's `form-action` keeps forms
    from reaching)."""
    opened = await _open(request, portal, code, client)
    if isinstance(opened, Response):
        return opened
    form = await _small_form(request)
    if not portal.csrf_valid(request, _text(form, "csrf_token")):
        return await dossier_page(
            request, portal, opened.status, client, notice=SESSION_EXPIRED, status_code=400
        )
    try:
        started = await portal.service.start_payment(opened.code, opened.secret, client)
    except IntakeUnavailable:
        return await dossier_page(
            request, portal, opened.status, client, notice=PAYMENT_DOWN, status_code=503
        )
    except TooManyRequests as error:
        return throttled(request, portal, opened.code, error.retry_after_seconds)
    except ActionRefused as refused:
        notice = PAYMENT_DOWN if refused.status == 503 else _refusal_text(refused)
        return await dossier_page(
            request, portal, opened.status, client, notice=notice, status_code=refused.status
        )
    if not started.payment_url.startswith(("https://", "http://")):
        return await dossier_page(
            request, portal, opened.status, client, notice=PAYMENT_DOWN, status_code=502
        )
    return portal.render(
        request,
        "payment.html",
        {"status": opened.status, "payment": started},
        private=True,
    )


@router.get("/ho-so/{code}/thanh-toan/ket-qua")
async def payment_return(request: Request, code: str, portal: Portal, client: Client) -> Response:
    """Where the payment platform sends the citizen back: the outcome, as intake knows it."""
    opened = await _open(request, portal, code, client)
    if isinstance(opened, Response):
        return opened
    status = opened.status
    if status.paid:
        outcome = "paid"
    elif status.state == 6:
        outcome = "pending"
    else:
        outcome = "none"
    return portal.render(
        request,
        "payment_return.html",
        {"status": status, "outcome": outcome, "actions": actions(status)},
        private=True,
    )


# --- the result -------------------------------------------------------------------------------


@router.get("/ho-so/{code}/ket-qua")
async def download_result(request: Request, code: str, portal: Portal, client: Client) -> Response:
    """The result document, streamed from intake (nothing kept by the portal)."""
    secret = held_secret(request, portal, code)
    if secret is None:
        return session_over(request, portal, code)
    stack = AsyncExitStack()
    try:
        download = await stack.enter_async_context(portal.service.result(code, secret, client))
    except (ActionRefused, NotFound):
        opened = await _open(request, portal, code, client)
        if isinstance(opened, Response):
            return opened
        return await dossier_page(
            request,
            portal,
            opened.status,
            client,
            notice="Chưa có kết quả điện tử để tải về cho hồ sơ này.",
            status_code=404,
        )
    except TooManyRequests as error:
        return throttled(request, portal, code, error.retry_after_seconds)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in download.chunks:
                yield chunk
        finally:
            await stack.aclose()

    headers = {"Cache-Control": "no-store"}
    if download.content_disposition:
        headers["Content-Disposition"] = download.content_disposition
    if download.content_length:
        headers["Content-Length"] = download.content_length
    return StreamingResponse(body(), media_type=download.content_type, headers=headers)


# --- rating -----------------------------------------------------------------------------------


@router.post("/ho-so/{code}/danh-gia")
async def rate(request: Request, code: str, portal: Portal, client: Client) -> Response:
    opened = await _open(request, portal, code, client)
    if isinstance(opened, Response):
        return opened
    form = await _small_form(request)
    score = _text(form, "score")
    comment = (_text(form, "comment") or "").strip()
    entered = {"score": score, "comment": comment}

    async def again(
        errors: dict[str, str] | None = None, notice: str | None = None, status: int = 422
    ) -> Response:
        return await dossier_page(
            request,
            portal,
            opened.status,
            client,
            errors=errors,
            notice=notice,
            entered=entered,
            status_code=status,
        )

    if not portal.csrf_valid(request, _text(form, "csrf_token")):
        return await again(notice=SESSION_EXPIRED, status=400)
    if errors := rating_errors(score, comment):
        return await again(errors)
    try:
        await portal.service.rate(
            opened.code, opened.secret, int(score or 0), comment[:MAX_COMMENT] or None, client
        )
    except IntakeUnavailable:
        return await again(notice=INTAKE_DOWN, status=503)
    except TooManyRequests as error:
        return throttled(request, portal, opened.code, error.retry_after_seconds)
    except ActionRefused as refused:
        if refused.reason == "already-rated":
            return await again(notice="Hồ sơ này đã được đánh giá. Cảm ơn bạn!", status=409)
        if refused.reason == "not-finished":
            return await again(
                notice="Bạn có thể đánh giá khi hồ sơ đã được giải quyết xong.", status=409
            )
        return await again(notice=_refusal_text(refused), status=refused.status)
    return RedirectResponse(_dossier_url(opened.code, "danh-gia"), status_code=303)

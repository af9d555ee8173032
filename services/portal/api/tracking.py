"""Tracking a dossier: the code + secret form (POST: the secret never goes in a URL the portal
makes), the QR link (its secret moved at once into a short-lived signed cookie), and the status
page read with that cookie, with the forms of the actions the dossier allows now
(`services.portal.api.actions` takes them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from services.portal.api.apply import SESSION_EXPIRED, _small_form, _text
from services.portal.api.dependencies import Client, Portal, PortalWeb
from services.portal.domain.errors import NotFound, TooManyRequests
from services.portal.domain.tracking import (
    DONE_MESSAGES,
    MAX_CODE,
    MAX_SECRET,
    RATING_LABELS,
    DossierStatus,
    actions,
    next_step,
    state_label,
    timeline,
    tracking_form_errors,
)

router = APIRouter(include_in_schema=False)

WRONG_SECRET = (
    "Không tìm thấy hồ sơ với mã hồ sơ và mã bí mật này. Vui lòng kiểm tra lại cả hai trên "
    "giấy tiếp nhận."
)
SESSION_OVER = "Phiên tra cứu đã hết hạn để bảo vệ thông tin của bạn. Vui lòng nhập lại mã bí mật."


def _form_page(
    request: Request,
    portal: PortalWeb,
    *,
    code: str = "",
    secret: str = "",
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return portal.render(
        request,
        "track_form.html",
        {"code": code, "secret": secret, "errors": errors or {}, "notice": notice},
        status_code=status_code,
        private=True,
    )


@router.get("/tra-cuu")
async def tracking_form(
    request: Request, portal: Portal, code: Annotated[str, Query(max_length=60)] = ""
) -> Response:
    return _form_page(request, portal, code=code.strip())


@router.post("/tra-cuu")
async def track(request: Request, portal: Portal, client: Client) -> Response:
    form = await _small_form(request)
    code = (_text(form, "code") or "").strip()[: MAX_CODE + 1]
    secret = (_text(form, "secret") or "").strip()[: MAX_SECRET + 1]
    if not portal.csrf_valid(request, _text(form, "csrf_token")):
        return _form_page(
            request, portal, code=code, secret=secret, notice=SESSION_EXPIRED, status_code=400
        )
    if errors := tracking_form_errors(code, secret):
        return _form_page(request, portal, code=code, secret=secret, errors=errors, status_code=422)
    try:
        await portal.service.status(code, secret, client)
    except NotFound:
        return _form_page(
            request,
            portal,
            code=code,
            secret=secret,
            errors={"secret": WRONG_SECRET},
            status_code=404,
        )
    except TooManyRequests as throttled:
        return _form_page(
            request,
            portal,
            code=code,
            secret=secret,
            notice=_throttled_text(throttled.retry_after_seconds),
            status_code=429,
        )
    return _open_session(portal, code, secret)


@router.get("/tra-cuu/lien-ket/{code}")
async def tracking_link(
    code: str, portal: Portal, k: Annotated[str, Query(max_length=MAX_SECRET)] = ""
) -> Response:
    """The QR code's target: the secret leaves the URL at once (cookie, then redirect)."""
    if tracking_form_errors(code, k):
        return RedirectResponse("/tra-cuu", status_code=303)
    return _open_session(portal, code, k)


def _open_session(portal: PortalWeb, code: str, secret: str) -> Response:
    response = RedirectResponse(f"/ho-so/{code}", status_code=303)
    value = portal.cookies.sign({"code": code, "secret": secret}, "tracking")
    portal.cookies.set(
        response, portal.cookies.names.tracking, value, portal.settings.tracking_session_seconds
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def held_secret(request: Request, portal: PortalWeb, code: str) -> str | None:
    """The secret of `code` from the tracking session cookie; None without a valid session."""
    held = portal.cookies.unsign(
        request.cookies.get(portal.cookies.names.tracking),
        "tracking",
        portal.settings.tracking_session_seconds,
    )
    if not isinstance(held, dict) or held.get("code") != code:
        return None
    return str(held.get("secret", ""))


def session_over(request: Request, portal: PortalWeb, code: str) -> Response:
    return _form_page(request, portal, code=code[:MAX_CODE], notice=SESSION_OVER)


def wrong_secret(request: Request, portal: PortalWeb, code: str) -> Response:
    response = _form_page(
        request, portal, code=code[:MAX_CODE], errors={"secret": WRONG_SECRET}, status_code=404
    )
    portal.cookies.clear(response, portal.cookies.names.tracking)
    return response


def throttled(request: Request, portal: PortalWeb, code: str, retry_after: int | None) -> Response:
    return _form_page(
        request,
        portal,
        code=code[:MAX_CODE],
        notice=_throttled_text(retry_after),
        status_code=429,
    )


async def dossier_page(
    request: Request,
    portal: PortalWeb,
    status: DossierStatus,
    client: str,
    *,
    done: str | None = None,
    notice: str | None = None,
    errors: Mapping[str, str] | None = None,
    entered: Mapping[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """The dossier's page: its status, timeline and messages, and the forms of what the citizen
    may do now; `errors` and `entered` bring a refused form back with what was entered."""
    allowed = actions(status)
    requested: list[Any] = []
    if allowed.supplement:
        procedure = await portal.service.procedure(status.procedure_code, client)
        # Officers name the documents they ask for (a code or a name); when none is one of the
        # procedure's, any of its documents may be sent.
        wanted = set(status.requested_documents)
        requested = [
            d for d in procedure.documents if d.code in wanted or d.name in wanted
        ] or list(procedure.documents)
    return portal.render(
        request,
        "dossier.html",
        {
            "status": status,
            "state_label": state_label(status.state),
            "steps": timeline(status),
            "next_step": next_step(status),
            "actions": allowed,
            "requested": requested,
            "rating_labels": RATING_LABELS,
            "done": DONE_MESSAGES.get(done or ""),
            "notice": notice,
            "errors": dict(errors or {}),
            "entered": dict(entered or {}),
            "max_file_bytes": portal.settings.max_file_bytes,
        },
        status_code=status_code,
        private=True,
    )


@router.get("/ho-so/{code}")
async def dossier(
    request: Request,
    code: str,
    portal: Portal,
    client: Client,
    xong: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    secret = held_secret(request, portal, code)
    if secret is None:
        return session_over(request, portal, code)
    try:
        status = await portal.service.status(code, secret, client)
    except NotFound:
        return wrong_secret(request, portal, code)
    except TooManyRequests as error:
        return throttled(request, portal, code, error.retry_after_seconds)
    return await dossier_page(request, portal, status, client, done=xong)


@router.post("/ho-so/thoat")
async def end_session(request: Request, portal: Portal) -> Response:
    form = await _small_form(request)
    response = RedirectResponse("/tra-cuu", status_code=303)
    if portal.csrf_valid(request, _text(form, "csrf_token")):
        portal.cookies.clear(response, portal.cookies.names.tracking)
    return response


def _throttled_text(retry_after: int | None) -> str:
    minutes = max(1, -(-(retry_after or 60) // 60))
    return (
        "Bạn đã tra cứu hoặc nhập sai mã bí mật quá nhiều lần. Vui lòng thử lại sau "
        f"{minutes} phút."
    )

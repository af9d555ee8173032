"""The workspace's pages: sign-in and logout at the provider, the unit's worklist, a dossier with
the forms of the actions it allows now. Every call to processing carries the officer's own
access token (refreshed when it is about to expire); processing's refusals become pages.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.responses import RedirectResponse, Response

from services.portal.api.dependencies import PortalWeb
from services.portal.api.security import CONTENT_SECURITY_POLICY
from services.portal.settings import PortalSettings
from services.portal.workspace import views
from services.portal.workspace.processing import (
    CaseNotFound,
    Conflict,
    Forbidden,
    NotSignedIn,
    ProcessingClient,
    ProcessingRefused,
    ProcessingUnavailable,
)
from services.portal.workspace.sessions import SessionStore, StaffProfile, StaffSession
from services.portal.workspace.signin import ProviderUnavailable, SignInFailed, StaffSignIn
from services.portal.workspace.staff_apis import StaffApis

log = logging.getLogger(__name__)

HOME = "/can-bo"
SIGN_IN = "/can-bo/dang-nhap"
CALLBACK = "/can-bo/dang-nhap/xong"
LOGOUT = "/can-bo/dang-xuat"
LOGGED_OUT = "/can-bo/da-dang-xuat"
SESSION_PURPOSE = "workspace-session"
_NEXT = re.compile(r"^/can-bo(/[A-Za-z0-9._\-/]*)?$")
# A posted form's page, to come back to after signing in again (its GET): the dossier's action
# forms, and the administrator's forms (which post to their own page).
_POSTED_FROM = (
    re.compile(r"^(/can-bo/ho-so/[0-9A-Za-z.\-_]{1,60})/[a-z\-]{1,40}$"),
    re.compile(r"^(/can-bo/quan-tri/(?:thu-tuc/[0-9A-Za-z.\-_]{1,40}|lich-lam-viec))$"),
)

SESSION_ENDED = "Phiên làm việc đã kết thúc. Vui lòng đăng nhập lại."
SIGN_IN_FAILED = "Đăng nhập không thành công. Vui lòng thử lại."
SESSION_EXPIRED = (
    "Phiên làm việc đã hết hạn do quá thời gian không thao tác. Thao tác vừa gửi (nếu có) chưa "
    "được thực hiện. Vui lòng đăng nhập lại."
)
EXPIRED_QUERY = "het-han"  # `?phien=het-han`: the sign-in page says why
CONFLICT = (
    "Không thực hiện được: hồ sơ vừa được cập nhật (có thể bởi cán bộ khác) hoặc trạng thái "
    "hiện tại không cho phép thao tác này. Trang dưới đây là trạng thái mới nhất của hồ sơ; "
    "vui lòng xem lại trước khi thao tác tiếp."
)

ERROR_PAGES: dict[int, tuple[str, str]] = {
    400: ("Yêu cầu không hợp lệ", "Vui lòng quay lại danh sách hồ sơ và thử lại."),
    403: (
        "Không có quyền truy cập",
        "Tài khoản của bạn không được xem hoặc thao tác trên hồ sơ này.",
    ),
    404: ("Không tìm thấy hồ sơ", "Không có hồ sơ với mã này."),
    503: (
        "Hệ thống tạm thời gián đoạn",
        "Hệ thống xử lý hồ sơ hoặc hệ thống đăng nhập tạm thời không phản hồi. "
        "Vui lòng thử lại sau ít phút.",
    ),
}
NOT_CONFIGURED = (
    "Không gian làm việc chưa được cấu hình",
    "Không gian làm việc cán bộ chưa được cấu hình trên máy chủ này (thiếu thông tin ứng dụng "
    "tại hệ thống đăng nhập). Vui lòng liên hệ Trung tâm Công nghệ thông tin.",
)


class SessionEnded(Exception):
    """No signed-in session (or it can no longer be refreshed): sign in again, then `next`."""

    def __init__(self, next_path: str, *, expired: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.expired = expired  # the browser had a session, which has ended meanwhile


def safe_next(path: str | None) -> str | None:
    """`path` if it is a workspace page to send the browser to after sign-in: a same-site path
    under `/can-bo` (no scheme, host, query, `//` or `..`: no open redirect), else None."""
    if not path or not _NEXT.match(path) or "//" in path:
        return None
    if any(part in (".", "..") for part in path.split("/")):
        return None
    return path


def return_path(request: Request) -> str:
    """The page to come back to after signing in again: the page asked for (GET), or the page
    a posted form belongs to (the form itself is not sent again); else the worklist."""
    path = request.url.path
    if request.method in ("GET", "HEAD"):
        return safe_next(path) or HOME
    for posted in _POSTED_FROM:
        if found := posted.match(path):
            return safe_next(found.group(1)) or HOME
    return HOME


class WorkspaceOff(Exception):
    """No client secret in production: the workspace is not configured."""


@dataclass(frozen=True)
class Workspace:
    """Everything the workspace's pages use, built by `install_workspace`."""

    portal: PortalWeb
    sessions: SessionStore
    signin: StaffSignIn | None
    processing: ProcessingClient
    apis: StaffApis
    redirect_base: str
    cookie_name: str
    content_security_policy: str

    # --- the session cookie (a signed reference to the server-side session) ------------------

    def session(self, request: Request) -> StaffSession | None:
        reference = self.portal.cookies.unsign(
            request.cookies.get(self.cookie_name),
            SESSION_PURPOSE,
            max_age=self.sessions.max_seconds,
        )
        return self.sessions.get(reference if isinstance(reference, str) else None)

    def remember(self, response: Response, session: StaffSession) -> None:
        value = self.portal.cookies.sign(session.id, SESSION_PURPOSE)
        self.portal.cookies.set(response, self.cookie_name, value, max_age=None)

    def had_session(self, request: Request) -> bool:
        """The browser sent a session cookie (so a missing session has expired or ended)."""
        return bool(request.cookies.get(self.cookie_name))

    def forget(self, response: Response) -> None:
        self.portal.cookies.clear(response, self.cookie_name)

    # --- pages ----------------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
        session: StaffSession | None = None,
    ) -> Response:
        values = {
            "staff": session.profile if session else None,
            "roles_text": _roles_text(session.profile) if session and session.profile else "",
            "nav": _navigation(session.profile if session else None),
            **context,
        }
        response = self.portal.render(
            request, template, values, status_code=status_code, private=True
        )
        # Logout posts to the workspace, which answers with a redirect to the provider: the
        # provider's origin must be allowed as a form's destination.
        response.headers["Content-Security-Policy"] = self.content_security_policy
        return response

    def error(self, request: Request, status: int, *, detail: str | None = None) -> Response:
        title, message = ERROR_PAGES.get(status, ERROR_PAGES[400])
        session = self.session(request)
        return self.render(
            request,
            "workspace/error.html",
            {"title": title, "message": message, "detail": detail},
            status_code=status,
            session=session if session and session.signed_in else None,
        )

    # --- the officer's token ----------------------------------------------------------------------

    async def access_token(self, session: StaffSession, next_path: str) -> str:
        """The session's access token, refreshed first when it is about to expire."""
        assert session.tokens is not None
        if session.tokens.fresh(time.time()):
            return session.tokens.access_token
        async with session.refresh_lock:  # one refresh for concurrent requests
            if not session.tokens.fresh(time.time()):
                assert self.signin is not None
                try:
                    session.tokens = await self.signin.refresh(session.tokens)
                except SignInFailed:
                    self.sessions.drop(session.id)
                    raise SessionEnded(next_path) from None
        return session.tokens.access_token


def _navigation(profile: StaffProfile | None) -> dict[str, bool]:
    """The workspace's parts the roles open (the services decide; this only hides links)."""
    roles = profile.roles if profile else frozenset()
    return {
        "worklist": bool(roles & views.OFFICER_ROLES),
        "desk": bool(roles & {"counter_officer", "admin"}),
        "report": bool(roles & views.HEAD_ROLES),
    }


def _roles_text(profile: StaffProfile) -> str:
    names = {
        "officer": "Chuyên viên",
        "unit_head": "Lãnh đạo đơn vị",
        "counter_officer": "Cán bộ một cửa",
        "admin": "Quản trị hệ thống",
    }
    return ", ".join(names[r] for r in sorted(profile.roles) if r in names)


async def workspace_of(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


WorkspaceDep = Annotated[Workspace, Depends(workspace_of)]


async def signed_in(request: Request, workspace: WorkspaceDep) -> StaffSession:
    """The signed-in session, or `SessionEnded` (sign in, then come back to this page)."""
    if workspace.signin is None:
        raise WorkspaceOff()
    session = workspace.session(request)
    if session is None or not session.signed_in:
        expired = session is None and workspace.had_session(request)
        raise SessionEnded(return_path(request), expired=expired)
    return session


SignedIn = Annotated[StaffSession, Depends(signed_in)]

router = APIRouter(include_in_schema=False)


# --- sign-in and logout ------------------------------------------------------------------------


@router.get(HOME)
async def home(
    request: Request,
    workspace: WorkspaceDep,
    states: Annotated[list[str], Query(alias="trang-thai")] = [],  # noqa: B006 - FastAPI's way
    channel: Annotated[str | None, Query(alias="kenh", max_length=2)] = None,
    procedure: Annotated[str | None, Query(alias="thu-tuc", max_length=40)] = None,
    code: Annotated[str | None, Query(alias="ma", max_length=views.MAX_CODE)] = None,
    cursor: Annotated[str | None, Query(alias="sau", max_length=500)] = None,
    ended: Annotated[str | None, Query(alias="phien", max_length=20)] = None,
    next_path: Annotated[str | None, Query(alias="tiep", max_length=200)] = None,
) -> Response:
    """Signed in: the unit's worklist; otherwise the sign-in page (saying so when the browser's
    session has expired: `?phien=het-han`, or a cookie whose session is gone)."""
    if workspace.signin is None:
        raise WorkspaceOff()
    session = workspace.session(request)
    if session is None or not session.signed_in:
        expired = ended == EXPIRED_QUERY or (session is None and workspace.had_session(request))
        back = safe_next(next_path)
        response = workspace.render(
            request,
            "workspace/signin.html",
            {
                "notice": SESSION_EXPIRED if expired else None,
                "sign_in_query": urlencode({"tiep": back}) if back and back != HOME else "",
            },
        )
        if session is None and workspace.had_session(request):
            workspace.forget(response)
        return response
    if session.profile and not session.profile.roles & views.OFFICER_ROLES:
        if session.profile.roles & {"counter_officer"}:  # no worklist: the counter desk
            return RedirectResponse(f"{HOME}/mot-cua", status_code=303)
    filters = views.WorklistFilters.parse(states, channel, procedure, cursor)
    token = await workspace.access_token(session, HOME)
    context: dict[str, Any] = {"filters": filters, "code": code or "", "notice": None}
    if code is not None and code.strip():
        wanted = code.strip()
        if views.valid_code(wanted):
            try:
                await workspace.processing.case(token, wanted)
            except CaseNotFound:
                pass
            except Forbidden:  # another unit's: the dossier page says so
                return RedirectResponse(f"{HOME}/ho-so/{wanted}", status_code=303)
            else:
                return RedirectResponse(f"{HOME}/ho-so/{wanted}", status_code=303)
        context["notice"] = f"Không tìm thấy hồ sơ có mã “{wanted}” trong đơn vị của bạn."
    counted, page = await asyncio.gather(
        workspace.processing.counts(token, procedure=filters.procedure, channel=filters.channel),
        workspace.processing.worklist(
            token,
            states=filters.states,
            procedure=filters.procedure,
            channel=filters.channel,
            cursor=filters.cursor,
            limit=views.PAGE_SIZE,
        ),
    )
    next_cursor = page.get("next_cursor")
    rows = [{**item, "deadline": views.deadline_badge(item)} for item in page.get("items") or []]
    counts = views.state_counts(counted)
    context.update(
        rows=rows,
        counts=counts,
        total=int(counted.get("total") or 0),
        counted_at=counted.get("as_of"),
        count_links={
            c.state: urlencode(
                views.WorklistFilters(
                    states=(c.state,), channel=filters.channel, procedure=filters.procedure
                ).query()
            )
            for c in counts
        },
        next_query=urlencode(filters.query(cursor=next_cursor)) if next_cursor else None,
        first_query=urlencode(filters.query()) if filters.cursor else None,
        state_options=[(int(s), views.state_label(s)) for s in views.WORKLIST_STATES],
        channel_labels=views.CHANNEL_LABELS,
        deadline_labels=views.DEADLINE_LABELS,
    )
    return workspace.render(request, "workspace/worklist.html", context, session=session)


@router.get(SIGN_IN)
async def sign_in(
    request: Request,
    workspace: WorkspaceDep,
    next_path: Annotated[str | None, Query(alias="tiep", max_length=200)] = None,
) -> Response:
    """To the provider's login page (authorisation code + PKCE)."""
    if workspace.signin is None:
        raise WorkspaceOff()
    session = workspace.session(request)
    if session is None or session.signed_in:
        session = workspace.sessions.create()
    # Kept in the server-side sign-in state: the callback sends the browser there.
    session.next_path = safe_next(next_path) or HOME
    response = await workspace.signin.start(
        request, session, f"{workspace.redirect_base}{CALLBACK}"
    )
    response.headers["Cache-Control"] = "no-store"
    workspace.remember(response, session)
    return response


@router.get(CALLBACK)
async def callback(request: Request, workspace: WorkspaceDep) -> Response:
    """The provider sends the browser back here with the code (or an error)."""
    if workspace.signin is None:
        raise WorkspaceOff()
    session = workspace.session(request)
    if session is None or session.signed_in or not session.flow:
        return _signin_again(request, workspace, SESSION_ENDED, 400)
    try:
        tokens, profile = await workspace.signin.finish(request, session)
    except SignInFailed as failure:
        log.warning("staff sign-in failed: %s", failure)
        workspace.sessions.drop(session.id)
        return _signin_again(request, workspace, SIGN_IN_FAILED, 400)
    signed = workspace.sessions.signed_in(session, tokens, profile)
    log.info("staff signed in: %s (unit %s)", profile.username, profile.unit)
    response = RedirectResponse(signed.next_path, status_code=303)
    workspace.remember(response, signed)
    return response


STAFF_LIST_TIMEOUT_SECONDS = 3.0


async def _staff_choices(
    workspace: Workspace,
    session: StaffSession,
    case: dict[str, Any],
    actions: list[views.ActionForm],
    next_path: str,
) -> tuple[tuple[str, str], ...] | None:
    """The assignment form's officers: processing's list of the case's unit's officers (those
    who have worked in processing), when the form is offered. None: the list is empty, refused
    or did not come in time, and the form asks for the user id."""
    unit = case.get("unit_code")
    if not unit or not any(a.action == "assign" for a in actions):
        return None
    token = await workspace.access_token(session, next_path)
    try:
        async with asyncio.timeout(STAFF_LIST_TIMEOUT_SECONDS):
            officers = await workspace.processing.unit_officers(token, str(unit))
    except (ProcessingRefused, ProcessingUnavailable, TimeoutError, ValueError) as error:
        log.warning("processing's staff list did not come: %r", error)  # a convenience
        return None
    if not officers:
        return None
    return views.assignee_choices(officers, unit, case.get("assignee"))


def _signin_again(request: Request, workspace: Workspace, notice: str, status: int) -> Response:
    response = workspace.render(
        request, "workspace/signin.html", {"notice": notice}, status_code=status
    )
    workspace.forget(response)
    return response


@router.post(LOGOUT)
async def logout(request: Request, workspace: WorkspaceDep) -> Response:
    """Ends the session here and at the provider (which then sends the browser back)."""
    form = await request.form()
    if not workspace.portal.csrf_valid(request, _text(form.get("csrf_token"))):
        return workspace.error(request, 400)
    session = workspace.session(request)
    destination = LOGGED_OUT
    if session is not None:
        workspace.sessions.drop(session.id)
        if session.tokens is not None and workspace.signin is not None:
            try:
                destination = await workspace.signin.logout_url(
                    session.tokens.id_token, f"{workspace.redirect_base}{LOGGED_OUT}"
                )
            except ProviderUnavailable:
                log.warning("the provider's end-session endpoint is unavailable")
    response = RedirectResponse(destination, status_code=303)
    workspace.forget(response)
    return response


@router.get(LOGGED_OUT)
async def logged_out(request: Request, workspace: WorkspaceDep) -> Response:
    return workspace.render(
        request, "workspace/signin.html", {"notice": "Bạn đã đăng xuất.", "logged_out": True}
    )


# --- a dossier ---------------------------------------------------------------------------------


@router.get(HOME + "/ho-so/{code}")
async def dossier(
    request: Request,
    workspace: WorkspaceDep,
    session: SignedIn,
    code: str,
    done: Annotated[str | None, Query(alias="xong", max_length=40)] = None,
) -> Response:
    if not views.valid_code(code):
        return workspace.error(request, 404)
    token = await workspace.access_token(session, request.url.path)
    case, submitted = await _case_and_dossier(workspace, token, code)
    notice = views.ACTIONS_BY_PATH[done].done if done in views.ACTIONS_BY_PATH else None
    return await _dossier_page(request, workspace, session, case, submitted, success=notice)


async def _case_and_dossier(
    workspace: Workspace, token: str, code: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Processing's case and intake's dossier as submitted, side by side. The case decides
    (its refusals are the page's); without intake's part the page still shows the case."""
    answers: tuple[dict[str, Any] | BaseException, ...] = await asyncio.gather(
        workspace.processing.case(token, code),
        workspace.apis.dossier(token, code),
        return_exceptions=True,
    )
    case, submitted = answers
    if isinstance(case, BaseException):
        raise case
    if isinstance(submitted, BaseException):
        if not isinstance(submitted, ProcessingRefused | ProcessingUnavailable):
            raise submitted
        log.warning("intake's dossier %s unavailable: %s", code, submitted)
        return case, None
    return case, submitted


@router.get(HOME + "/ho-so/{code}/tai-lieu/{storage_id}")
async def document(
    request: Request, workspace: WorkspaceDep, session: SignedIn, code: str, storage_id: str
) -> Response:
    """One of the dossier's documents, from intake with the officer's token."""
    if not views.valid_code(code) or not views.valid_storage_id(storage_id):
        return workspace.error(request, 404)
    token = await workspace.access_token(session, f"{HOME}/ho-so/{code}")
    found = await workspace.apis.document(token, code, storage_id)
    return Response(
        found.data,
        media_type=found.content_type,
        headers={
            "Content-Disposition": views.as_attachment(found.content_disposition),
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _dossier_page(
    request: Request,
    workspace: Workspace,
    session: StaffSession,
    case: dict[str, Any],
    submitted: dict[str, Any] | None,
    *,
    success: str | None = None,
    refusal: str | None = None,
    failed: views.ActionForm | None = None,
    entered: views.ActionInput | None = None,
    status_code: int = 200,
) -> Response:
    assert session.profile is not None
    actions = views.offered_actions(
        case.get("allowed_actions") or [],
        session.profile.roles,
        approved=bool(case.get("approved")),
        extended=bool(case.get("extensions")),
    )
    context = {
        "case": case,
        "deadline": views.deadline_badge(case),
        "processing_time": views.processing_time(case),
        "deadline_labels": views.DEADLINE_LABELS,
        "submitted": submitted,
        "form_rows": views.form_rows(submitted),
        "actions": actions,
        "staff_choices": await _staff_choices(
            workspace, session, case, actions, f"{HOME}/ho-so/{case.get('code', '')}"
        ),
        "channel_labels": views.CHANNEL_LABELS,
        "step_label": views.step_label,
        "due_reason_label": views.due_reason_label,
        "state_label": views.state_label,
        "field_kinds": views.FieldKind,
        "success": success,
        "refusal": refusal,
        "failed": failed.path if failed else None,
        "entered": entered or views.ActionInput(),
        "idempotency_key": secrets.token_urlsafe(18),
    }
    return workspace.render(
        request, "workspace/dossier.html", context, status_code=status_code, session=session
    )


@router.post(HOME + "/ho-so/{code}/{action}")
async def act(
    request: Request, workspace: WorkspaceDep, session: SignedIn, code: str, action: str
) -> Response:
    """One workflow action, as the officer: processing decides, its refusal is shown."""
    form_spec = views.ACTIONS_BY_PATH.get(action)
    if form_spec is None or not views.valid_code(code):
        return workspace.error(request, 404)
    form = await request.form()
    if not workspace.portal.csrf_valid(request, _text(form.get("csrf_token"))):
        return workspace.error(request, 400)
    submitted = {name: _text(value) or "" for name, value in form.items()}
    uploads = {
        name: value
        for name, value in form.items()
        if isinstance(value, StarletteUpload) and value.filename
    }
    submitted.update({name: upload.filename or "" for name, upload in uploads.items()})
    entered = views.read_action(form_spec, submitted)
    key = submitted.get("idempotency_key") or secrets.token_urlsafe(18)
    token = await workspace.access_token(session, f"{HOME}/ho-so/{code}")

    async def page_again(status_code: int, **shown: Any) -> Response:
        """The dossier page as it stands now, with what went wrong."""
        case, dossier = await _case_and_dossier(workspace, token, code)
        return await _dossier_page(
            request, workspace, session, case, dossier, status_code=status_code, **shown
        )

    if entered.errors:
        return await page_again(422, failed=form_spec, entered=entered)
    try:
        if form_spec.multipart:
            upload = uploads["file"]
            data = await upload.read(workspace.portal.settings.max_file_bytes + 1)
            await workspace.processing.issue_result(
                token,
                code,
                file_name=upload.filename or "ket-qua",
                content_type=upload.content_type or "application/octet-stream",
                data=data,
                note=entered.body.get("note"),
                idempotency_key=key[:200],
            )
        else:
            await workspace.processing.act(
                token, code, form_spec.path, entered.body, idempotency_key=key[:200]
            )
    except Conflict:
        return await page_again(409, refusal=CONFLICT)
    except (CaseNotFound, Forbidden, NotSignedIn, ProcessingUnavailable):
        raise
    except ProcessingRefused as refused:  # 400, 413, 415, 422: a rule of the workflow
        return await page_again(
            422,
            refusal=f"Không thực hiện được: {refused.detail}",
            failed=form_spec,
            entered=entered,
        )
    return RedirectResponse(f"{HOME}/ho-so/{code}?xong={form_spec.path}", status_code=303)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- wiring ---------------------------------------------------------------------------------------


def install_workspace(
    app: FastAPI,
    settings: PortalSettings,
    portal: PortalWeb,
    *,
    processing_transport: Any = None,
    provider_transport: Any = None,
    clock: Any = time.time,
) -> WorkspaceClients:
    """Adds the workspace's pages and error handling to the portal's app; answers its clients
    (to be closed with the app)."""
    secret = settings.workspace_client_secret
    signin = (
        StaffSignIn(
            issuer_url=settings.oidc_issuer_url,
            client_id=settings.oidc_client_id,
            client_secret=secret,
            timeout=settings.oidc_timeout_seconds,
            transport=provider_transport,
        )
        if secret
        else None
    )
    processing = ProcessingClient(
        settings.processing_base_url,
        timeout=settings.processing_timeout_seconds,
        transport=processing_transport,
    )
    # Intake and reporting, with the officer's token; in tests `processing_transport` answers
    # for every service (each has its own base URL).
    apis = StaffApis(
        intake_base_url=settings.intake_base_url,
        reporting_base_url=settings.reporting_base_url,
        timeout=settings.intake_timeout_seconds,
        upload_timeout=settings.intake_upload_timeout_seconds,
        transport=processing_transport,
    )
    provider = urlsplit(settings.oidc_issuer_url)
    origin = f"{provider.scheme}://{provider.netloc}"
    workspace = Workspace(
        portal=portal,
        sessions=SessionStore(
            idle_seconds=settings.workspace_session_idle_seconds,
            max_seconds=settings.workspace_session_max_seconds,
            capacity=settings.workspace_max_sessions,
            clock=clock,
        ),
        signin=signin,
        processing=processing,
        apis=apis,
        redirect_base=settings.oidc_redirect_base_url.rstrip("/"),
        cookie_name=("__Host-" if settings.cookie_secure else "") + "workspace_session",
        content_security_policy=CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", f"form-action 'self' {origin}"
        ),
    )
    app.state.workspace = workspace
    # Their routes use this module's dependencies.
    from services.portal.workspace import admin, counter, report

    app.include_router(router)
    app.include_router(counter.router)
    app.include_router(report.router)
    app.include_router(admin.router)
    _install_error_pages(app, workspace)
    return WorkspaceClients(processing, apis)


@dataclass(frozen=True)
class WorkspaceClients:
    """The workspace's HTTP clients, closed with the app."""

    processing: ProcessingClient
    apis: StaffApis

    async def close(self) -> None:
        await self.processing.close()
        await self.apis.close()


def _install_error_pages(app: FastAPI, workspace: Workspace) -> None:
    @app.exception_handler(SessionEnded)
    async def _session_ended(request: Request, exc: SessionEnded) -> Response:
        if exc.expired:  # say why at the workspace's sign-in page, rather than bounce silently
            query = {"phien": EXPIRED_QUERY}
            back = safe_next(exc.next_path)
            if back and back != HOME:  # signing in again comes back to that page
                query["tiep"] = back
            response = RedirectResponse(f"{HOME}?{urlencode(query)}", status_code=303)
            workspace.forget(response)
        else:
            target = SIGN_IN + (f"?{urlencode({'tiep': exc.next_path})}" if exc.next_path else "")
            response = RedirectResponse(target, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(NotSignedIn)
    async def _token_refused(request: Request, exc: NotSignedIn) -> Response:
        session = workspace.session(request)
        if session is not None:
            workspace.sessions.drop(session.id)
        return await _session_ended(request, SessionEnded(return_path(request)))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return workspace.error(request, 403, detail=exc.detail)

    @app.exception_handler(CaseNotFound)
    async def _not_found(request: Request, exc: CaseNotFound) -> Response:
        return workspace.error(request, 404)

    @app.exception_handler(ProcessingRefused)
    async def _refused(request: Request, exc: ProcessingRefused) -> Response:
        return workspace.error(request, 400, detail=exc.detail)

    @app.exception_handler(ProcessingUnavailable)
    async def _processing_down(request: Request, exc: ProcessingUnavailable) -> Response:
        log.warning("processing unavailable on %s: %s", request.url.path, exc)
        response = workspace.error(request, 503)
        response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(ProviderUnavailable)
    async def _provider_down(request: Request, exc: ProviderUnavailable) -> Response:
        log.warning("the OpenID Connect provider is unavailable on %s: %s", request.url.path, exc)
        response = workspace.error(request, 503)
        response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(WorkspaceOff)
    async def _off(request: Request, exc: WorkspaceOff) -> Response:
        title, message = NOT_CONFIGURED
        return workspace.render(
            request,
            "workspace/error.html",
            {"title": title, "message": message, "detail": None},
            status_code=503,
        )

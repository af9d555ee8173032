"""The officer API: worklist, case detail, workflow actions, result documents, calendar changes.

Every route needs a staff bearer token (`shared.auth`). Officers and unit heads see and act only on
their own unit's cases, administrators on any (`domain/authorisation.py`); each action is also
checked against the lifecycle. Errors are RFC 9457 problems.

`Idempotency-Key` is honoured on every action: the key is recorded in the case, atomically with
the change, so a retried request answers the case as it is (header `Idempotent-Replayed: true`)
instead of failing on the state its first attempt already changed.
"""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from bson import ObjectId
from bson.errors import InvalidId
from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from services.processing import metrics
from services.processing.domain.authorisation import (
    REFUSAL_MESSAGES,
    VIEW,
    refusal,
)
from services.processing.domain.calendar import CalendarChange
from services.processing.domain.case import NO_DUE_DATE, Case
from services.processing.domain.lifecycle import (
    CLOCK_RUNNING,
    Action,
    TransitionError,
    allowed_actions,
)
from services.processing.domain.workflow import Command, WorkflowError
from services.processing.runtime import ActResult, CaseNotFound, ProcessingRuntime
from services.processing.store import VersionConflict
from shared.auth import FORBIDDEN, FORBIDDEN_TITLE, Role, Staff, require_roles
from shared.events import DocumentRef, DossierState
from shared.http import Problem, content_disposition

router = APIRouter(prefix="/api/v1", tags=["officer"])

SERVICE = "processing"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
Officer = Annotated[
    Staff, Depends(require_roles(Role.officer, Role.unit_head, Role.admin, action="cases"))
]
Admin = Annotated[Staff, Depends(require_roles(Role.admin, action="calendar_change"))]


def _runtime(request: Request) -> ProcessingRuntime:
    return request.app.state.processing  # type: ignore[no-any-return]


# -- bodies ---------------------------------------------------------------------------------------

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteBody(_Body):
    note: Text | None = None


class ReasonBody(_Body):
    reason: Text


class AssignBody(_Body):
    assignee: str = Field(min_length=1, max_length=100, description="The officer's subject (id)")
    note: Text | None = None


class SupplementBody(_Body):
    reason: Text
    documents: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        min_length=1, max_length=50, description="Documents the applicant must supply"
    )


class PaymentBody(_Body):
    amount_vnd: int = Field(gt=0, le=10_000_000_000)
    note: Text | None = None


class ReturnBody(_Body):
    method: Literal["counter", "post", "online"]
    note: Text | None = None


class ExtendBody(_Body):
    """Form 04: the apology's reason and the one new appointment date (a working day)."""

    reason: Text
    new_due_date: date


class CalendarChangeBody(_Body):
    day: date
    working: bool = Field(description="true: an extra working day; false: an announced day off")
    reason: Text


# -- views ----------------------------------------------------------------------------------------


def _overdue(state: int, due: datetime | None, now: datetime) -> bool:
    return due is not None and DossierState(state) in CLOCK_RUNNING and now > due


def _summary(document: dict[str, Any], now: datetime) -> dict[str, Any]:
    due = document.get("due_at")
    return {
        "code": document["_id"],
        **{
            key: document.get(key)
            for key in (
                "procedure_code",
                "procedure_name",
                "unit_code",
                "level",
                "channel",
                "state",
                "applicant_name",
                "assignee",
                "submitted_at",
                "received_at",
                "due_at",
            )
        },
        "online": document.get("online_rank") == 0,
        "overdue": _overdue(document["state"], due, now),
    }


def _detail(case: Case) -> dict[str, Any]:
    body = case.model_dump(
        mode="json",
        exclude={"online_rank", "due_sort", "active", "next_check_at", "version"},
    )
    body["overdue"] = _overdue(case.state, case.due_at, datetime.now(UTC))
    body["allowed_actions"] = [a.value for a in allowed_actions(case.state)]
    return body


# -- errors ---------------------------------------------------------------------------------------


def _authoriser(staff: Staff, action: str) -> Callable[[Case], None]:
    def authorise(case: Case) -> None:
        why = refusal(staff.roles, staff.unit, case.unit_code, action)
        if why is not None:
            FORBIDDEN.labels(SERVICE, action).inc()
            metrics.REFUSED_ACTIONS.labels(action, "forbidden").inc()
            raise Problem(403, FORBIDDEN_TITLE, REFUSAL_MESSAGES[why], reason=why.value)

    return authorise


def _not_found(code: str) -> Problem:
    return Problem(404, "Không tìm thấy hồ sơ (case not found)", f"No case {code}.")


async def _run(
    request: Request,
    response: Response,
    staff: Staff,
    code: str,
    action: Action,
    key: str | None,
    build: Callable[[Case], Command],
) -> dict[str, Any]:
    runtime = _runtime(request)
    request_key = f"{action.value}:{staff.subject}:{key}" if key else None
    try:
        result: ActResult = await runtime.act(
            code, build, authorise=_authoriser(staff, action.value), request_key=request_key
        )
    except CaseNotFound:
        raise _not_found(code) from None
    except TransitionError as exc:
        metrics.REFUSED_ACTIONS.labels(action.value, "lifecycle").inc()
        raise Problem(
            409,
            "Thao tác không phù hợp trạng thái hồ sơ (transition not allowed)",
            str(exc),
            state=int(exc.state),
            action=action.value,
            allowed_actions=[a.value for a in allowed_actions(exc.state)],
        ) from None
    except WorkflowError as exc:
        metrics.REFUSED_ACTIONS.labels(action.value, "rule").inc()
        raise Problem(
            422, "Vi phạm quy định xử lý hồ sơ (business rule)", str(exc), action=action.value
        ) from None
    except VersionConflict:
        metrics.REFUSED_ACTIONS.labels(action.value, "conflict").inc()
        raise Problem(
            409,
            "Hồ sơ vừa được cập nhật, vui lòng thử lại (concurrent change)",
            "The case changed while the action was applied; reload it and retry.",
        ) from None
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _detail(result.case)


def _command(action: Action, staff: Staff, **fields: Any) -> Callable[[Case], Command]:
    return lambda case: Command(action, staff.subject, datetime.now(UTC), **fields)


# -- worklist and detail ---------------------------------------------------------------------------


@router.get("/cases")
async def worklist(
    request: Request,
    staff: Officer,
    state: Annotated[list[DossierState] | None, Query()] = None,
    procedure: Annotated[str | None, Query(max_length=40)] = None,
    overdue: bool = False,
    unit: Annotated[str | None, Query(max_length=40, description="admins only")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The unit's active cases: ONLINE dossiers first (Decision 4094), then by due date."""
    if staff.is_admin:
        unit_code = unit
    else:
        if unit is not None and unit != staff.unit:
            _authoriser(staff, VIEW)(_placeholder(unit))
        unit_code = staff.unit
        if unit_code is None:
            raise Problem(403, FORBIDDEN_TITLE, "The token carries no unit.")
    now = datetime.now(UTC)
    try:
        page, next_cursor = await _runtime(request).store.worklist(
            unit_code=unit_code,
            states=[int(s) for s in state or ()],
            procedure_code=procedure,
            overdue_at=now if overdue else None,
            cursor=cursor,
            limit=limit,
        )
    except ValueError:
        raise Problem(400, "Con trỏ không hợp lệ (invalid cursor)") from None
    return {"items": [_summary(d, now) for d in page], "next_cursor": next_cursor}


def _placeholder(unit: str) -> Case:
    return Case(
        code="-",
        procedure_code="-",
        unit_code=unit,
        level=1,
        channel=1,
        state=DossierState.SUBMITTED,
        submitted_at=datetime.now(UTC),
        due_sort=NO_DUE_DATE,
    )


@router.get("/cases/{code}")
async def case_detail(request: Request, staff: Officer, code: str) -> dict[str, Any]:
    """The case with its history, pauses, due dates (original and re-set) and extensions."""
    stored = await _runtime(request).store.load(code)
    if stored is None:
        raise _not_found(code)
    _authoriser(staff, VIEW)(stored.case)
    return _detail(stored.case)


# -- actions ------------------------------------------------------------------------------------


@router.post("/cases/{code}/receive")
async def receive(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    key: IdempotencyKey = None,
    body: NoteBody | None = None,
) -> dict[str, Any]:
    """Intake check passed (1 → 2; an electronic dossier then goes to processing, 2 → 4)."""
    note = body.note if body else None
    build = _command(Action.RECEIVE, staff, note=note)
    return await _run(request, response, staff, code, Action.RECEIVE, key, build)


@router.post("/cases/{code}/refuse-intake")
async def refuse_intake(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    body: ReasonBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Not received, with the reason (1 → 3)."""
    build = _command(Action.REFUSE_INTAKE, staff, reason=body.reason)
    return await _run(request, response, staff, code, Action.REFUSE_INTAKE, key, build)


@router.post("/cases/{code}/start-processing")
async def start_processing(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    key: IdempotencyKey = None,
    body: NoteBody | None = None,
) -> dict[str, Any]:
    """A paper dossier reached the unit before the automatic move (2 → 4)."""
    build = _command(Action.START_PROCESSING, staff, note=body.note if body else None)
    return await _run(request, response, staff, code, Action.START_PROCESSING, key, build)


@router.post("/cases/{code}/assign")
async def assign(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    body: AssignBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Give the case to an officer of the unit (unit head)."""
    build = _command(Action.ASSIGN, staff, assignee=body.assignee, note=body.note)
    return await _run(request, response, staff, code, Action.ASSIGN, key, build)


@router.post("/cases/{code}/request-supplement")
async def request_supplement(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    body: SupplementBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Ask for documents (4 → 5, the clock stops; at the intake check 1 stays 1)."""
    build = _command(
        Action.REQUEST_SUPPLEMENT, staff, reason=body.reason, documents=tuple(body.documents)
    )
    return await _run(request, response, staff, code, Action.REQUEST_SUPPLEMENT, key, build)


@router.post("/cases/{code}/request-payment")
async def request_payment(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    body: PaymentBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Ask the applicant to meet the financial obligation (4 → 6)."""
    build = _command(Action.REQUEST_PAYMENT, staff, amount_vnd=body.amount_vnd, note=body.note)
    return await _run(request, response, staff, code, Action.REQUEST_PAYMENT, key, build)


@router.post("/cases/{code}/approve")
async def approve(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    key: IdempotencyKey = None,
    body: NoteBody | None = None,
) -> dict[str, Any]:
    """The appraisal is approved (unit head); the result can then be issued."""
    build = _command(Action.APPROVE, staff, note=body.note if body else None)
    return await _run(request, response, staff, code, Action.APPROVE, key, build)


@router.post("/cases/{code}/refuse")
async def refuse(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    body: ReasonBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Stopped / refused after appraisal, with the reason (4 → 8; unit head)."""
    build = _command(Action.REFUSE, staff, reason=body.reason)
    return await _run(request, response, staff, code, Action.REFUSE, key, build)


@router.post("/cases/{code}/result")
async def issue_result(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    file: Annotated[UploadFile, File(description="The signed result document")],
    note: Annotated[str | None, Form(max_length=2000)] = None,
    document_type: Annotated[str, Form(min_length=1, max_length=40)] = "ket_qua",
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Issue the result (4 → 9): the document is kept in processing's store, its reference
    travels in the event so intake can deliver it online (level 4)."""
    runtime = _runtime(request)
    settings = runtime.settings
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    if content_type not in settings.result_content_types:
        raise Problem(
            415,
            "Định dạng tệp không được chấp nhận (unsupported file type)",
            f"Accepted: {', '.join(settings.result_content_types)}.",
        )
    data = await file.read(settings.max_result_bytes + 1)
    if len(data) > settings.max_result_bytes:
        raise Problem(413, "Tệp quá lớn (file too large)", f"At most {settings.max_result_bytes}.")
    if not data:
        raise Problem(422, "Tệp rỗng (empty file)")
    # Check before storing the bytes, so that a refused action leaves no orphan file; what is
    # refused (or replayed) goes through `_run` without a document, for the same answer.
    stored = await runtime.store.load(code)
    if stored is None:
        raise _not_found(code)
    request_key = f"{Action.ISSUE_RESULT.value}:{staff.subject}:{key}" if key else None
    _authoriser(staff, Action.ISSUE_RESULT.value)(stored.case)
    replay = request_key is not None and request_key in stored.request_keys
    allowed = Action.ISSUE_RESULT in allowed_actions(stored.case.state) and stored.case.approved
    if replay or not allowed:
        build = _command(Action.ISSUE_RESULT, staff, note=note)
        return await _run(request, response, staff, code, Action.ISSUE_RESULT, key, build)
    return await _issue(request, response, staff, code, key, file, data, note, document_type)


async def _issue(
    request: Request,
    response: Response,
    staff: Staff,
    code: str,
    key: str | None,
    file: UploadFile,
    data: bytes,
    note: str | None,
    document_type: str,
) -> dict[str, Any]:
    runtime = _runtime(request)
    file_name = (file.filename or "ket-qua").rsplit("/", 1)[-1][:200]
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    storage_id = await runtime.results.upload_from_stream(
        file_name,
        data,
        metadata={"dossier_code": code, "content_type": content_type, "uploaded_by": staff.subject},
    )
    reference = DocumentRef(
        document_type=document_type,
        file_name=file_name,
        content_type=content_type,
        size_bytes=len(data),
        storage_id=str(storage_id),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    build = _command(Action.ISSUE_RESULT, staff, note=note, result_document=reference)
    try:
        return await _run(request, response, staff, code, Action.ISSUE_RESULT, key, build)
    except BaseException:
        await runtime.results.delete(storage_id)  # the action failed: keep no orphan
        raise


@router.post("/cases/{code}/return-result")
async def return_result(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    body: ReturnBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """The result was handed over: at the counter, by post or online (9 → 10)."""
    build = _command(Action.RETURN_RESULT, staff, return_method=body.method, note=body.note)
    return await _run(request, response, staff, code, Action.RETURN_RESULT, key, build)


@router.post("/cases/{code}/extend")
async def extend(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    body: ExtendBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Apology and new appointment date (Form 04): once, at least one day before the due date."""
    build = _command(Action.EXTEND, staff, reason=body.reason, new_due_date=body.new_due_date)
    return await _run(request, response, staff, code, Action.EXTEND, key, build)


@router.post("/cases/{code}/confirm-withdrawal")
async def confirm_withdrawal(
    request: Request,
    response: Response,
    staff: Officer,
    code: str,
    key: IdempotencyKey = None,
    body: NoteBody | None = None,
) -> dict[str, Any]:
    """The applicant's withdrawal is confirmed (7 → 8)."""
    build = _command(Action.CONFIRM_WITHDRAWAL, staff, note=body.note if body else None)
    return await _run(request, response, staff, code, Action.CONFIRM_WITHDRAWAL, key, build)


# -- result documents, for officers and for intake (service to service) ----------------------------


@router.get("/results/{storage_id}")
async def download_result(request: Request, staff: Officer, storage_id: str) -> Response:
    """The bytes of an issued result. Intake fetches them with a service token carrying the
    `admin` role (services never read each other's database); officers of the case's unit too."""
    runtime = _runtime(request)
    try:
        object_id = ObjectId(storage_id)
    except (InvalidId, TypeError):
        raise Problem(404, "Không tìm thấy tệp (document not found)") from None
    found = [f async for f in runtime.results.find({"_id": object_id}).limit(1)]
    if not found:
        raise Problem(404, "Không tìm thấy tệp (document not found)")
    metadata = found[0].metadata or {}
    stored = await runtime.store.load(metadata.get("dossier_code", ""))
    if stored is None:
        raise Problem(404, "Không tìm thấy tệp (document not found)")
    _authoriser(staff, VIEW)(stored.case)
    stream = await runtime.results.open_download_stream(object_id)
    data = await stream.read()
    return Response(
        data,
        media_type=metadata.get("content_type", "application/octet-stream"),
        headers={"Content-Disposition": content_disposition(stream.filename or "ket-qua")},
    )


# -- the working calendar (administrators) --------------------------------------------------------


@router.get("/calendar/changes", tags=["calendar"])
async def calendar_changes(request: Request, staff: Officer) -> list[dict[str, Any]]:
    """The announced changes layered on the official calendar (later entries win)."""
    changes = await _runtime(request).store.calendar_changes_list()
    return [{"day": c.day, "working": c.working, "reason": c.reason} for c in changes]


@router.post("/calendar/changes", tags=["calendar"], status_code=201)
async def add_calendar_change(
    request: Request, staff: Admin, body: CalendarChangeBody
) -> dict[str, Any]:
    """Enter an announced day off or extra working day; applies to due dates computed from now
    on (due dates already in force are kept, R8)."""
    runtime = _runtime(request)
    await runtime.add_calendar_change(
        CalendarChange(body.day, body.working, body.reason), staff.subject
    )
    return {
        "day": body.day,
        "working": runtime.rules.calendar.is_working_day(body.day),
        "reason": body.reason,
    }

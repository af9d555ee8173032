"""Cases: the worklist, the case detail and the workflow actions (the result's issue, with its
upload, is in `results.py`).

Every action answers the case as it now is. `Idempotency-Key` is honoured on every action: the key
is recorded in the case, atomically with the change, so a retried request answers the case as it
is (header `Idempotent-Replayed: true`) instead of failing on the state its first attempt already
changed.
"""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from services.processing.api.dependencies import (
    Cases,
    Directory,
    IdempotencyKey,
    Officer,
    domain_problems,
)
from services.processing.api.schemas import (
    ActionBody,
    AssignBody,
    CaseCounts,
    CaseDetail,
    ExtendBody,
    NoteBody,
    PaymentBody,
    ReasonBody,
    ReturnBody,
    SupplementBody,
    WorklistItem,
    WorklistPage,
)
from services.processing.domain.lifecycle import Action
from services.processing.service.cases import ActResult
from shared.contracts.events import Channel, DossierState
from shared.runtime.auth import Staff
from shared.runtime.http import StrictQueryBool, problems

router = APIRouter(prefix="/api/v1", tags=["officer"], responses=problems(401, 403, 503))


@router.get(
    "/cases", responses=problems(400, 422, notes={400: "A cursor this service did not make"})
)
async def worklist(
    staff: Officer,
    cases: Cases,
    state: Annotated[list[DossierState] | None, Query()] = None,
    procedure: Annotated[str | None, Query(max_length=40)] = None,
    channel: Annotated[Channel | None, Query(description="1 counter, 2 online, 3 post")] = None,
    code: Annotated[
        str | None, Query(max_length=60, description="The one case with this dossier code")
    ] = None,
    overdue: StrictQueryBool = False,
    unit: Annotated[str | None, Query(max_length=40, description="admins only")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WorklistPage:
    """The unit's active cases: ONLINE dossiers first (Decision 4094), then by due date;
    filtered by state, procedure, channel, or looked up by dossier code."""
    with domain_problems():
        page = await cases.worklist(
            staff,
            states=state or (),
            procedure_code=procedure,
            channel=channel,
            code=code,
            overdue=overdue,
            unit=unit,
            cursor=cursor,
            limit=limit,
        )
    return WorklistPage(
        items=[WorklistItem.of(item, page.as_of) for item in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/case-counts", responses=problems(422))
async def case_counts(
    staff: Officer,
    cases: Cases,
    procedure: Annotated[str | None, Query(max_length=40)] = None,
    channel: Annotated[Channel | None, Query(description="1 counter, 2 online, 3 post")] = None,
    unit: Annotated[str | None, Query(max_length=40, description="admins only")] = None,
) -> CaseCounts:
    """The unit's active cases per state (the worklist's counts), with its procedure and
    channel filters; states without a case are left out."""
    with domain_problems():
        counted = await cases.state_counts(
            staff, procedure_code=procedure, channel=channel, unit=unit
        )
    return CaseCounts.of(counted)


@router.get("/cases/{code}", responses=problems(404, 422))
async def case_detail(staff: Officer, cases: Cases, code: str) -> CaseDetail:
    """The case with its history, pauses, due dates (original and re-set) and extensions."""
    with domain_problems():
        case = await cases.case(staff, code)
    return CaseDetail.of(case, datetime.now(UTC))


def answer(result: ActResult, response: Response) -> CaseDetail:
    """The case after an action (`Idempotent-Replayed: true` when a retry changed nothing)."""
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return CaseDetail.of(result.case, datetime.now(UTC))


# -- workflow actions: one route each, all alike ---------------------------------------------------


@dataclass(frozen=True)
class ActionRoute:
    path: str
    action: Action
    body: type[ActionBody]
    summary: str  # the route's description in OpenAPI
    body_required: bool = True  # False: the body (a note) may be left out


ACTION_ROUTES = (
    ActionRoute(
        "receive",
        Action.RECEIVE,
        NoteBody,
        "Intake check passed (1 → 2; an electronic dossier then goes to processing, 2 → 4).",
        body_required=False,
    ),
    ActionRoute(
        "refuse-intake", Action.REFUSE_INTAKE, ReasonBody, "Not received, with the reason (1 → 3)."
    ),
    ActionRoute(
        "start-processing",
        Action.START_PROCESSING,
        NoteBody,
        "A paper dossier reached the unit before the automatic move (2 → 4).",
        body_required=False,
    ),
    ActionRoute(
        "assign", Action.ASSIGN, AssignBody, "Give the case to an officer of the unit (unit head)."
    ),
    ActionRoute(
        "request-supplement",
        Action.REQUEST_SUPPLEMENT,
        SupplementBody,
        "Ask for documents (4 → 5, the clock stops; at the intake check 1 stays 1).",
    ),
    ActionRoute(
        "request-payment",
        Action.REQUEST_PAYMENT,
        PaymentBody,
        "Ask the applicant to meet the financial obligation (4 → 6).",
    ),
    ActionRoute(
        "approve",
        Action.APPROVE,
        NoteBody,
        "The appraisal is approved (unit head); the result can then be issued.",
        body_required=False,
    ),
    ActionRoute(
        "refuse",
        Action.REFUSE,
        ReasonBody,
        "Stopped / refused after appraisal, with the reason (4 → 8; unit head).",
    ),
    ActionRoute(
        "return-result",
        Action.RETURN_RESULT,
        ReturnBody,
        "The result was handed over: at the counter, by post or online (9 → 10).",
    ),
    ActionRoute(
        "extend",
        Action.EXTEND,
        ExtendBody,
        "Apology and new appointment date (Form 04): once, at least one day before the due date.",
    ),
    ActionRoute(
        "confirm-withdrawal",
        Action.CONFIRM_WITHDRAWAL,
        NoteBody,
        "The applicant's withdrawal is confirmed (7 → 8).",
        body_required=False,
    ),
)


def _endpoint(route: ActionRoute) -> Callable[..., Awaitable[CaseDetail]]:
    action = route.action

    async def act(
        response: Response,
        staff: Staff,
        cases: Cases,
        directory: Directory,
        code: str,
        key: str | None,
        body: ActionBody | None,
    ) -> CaseDetail:
        fields: dict[str, Any] = body.command_fields() if body is not None else {}
        if action is Action.ASSIGN and fields.get("assignee"):
            # Shown instead of the provider's id (one read by `_id`, per assignment only).
            fields["assignee_name"] = await directory.name_of(fields["assignee"])
        with domain_problems(action.value):
            result = await cases.act(staff, code, action, key, **fields)
        return answer(result, response)

    if route.body_required:
        Body = route.body

        async def with_body(
            response: Response,
            staff: Officer,
            cases: Cases,
            directory: Directory,
            code: str,
            body: Body,  # type: ignore[valid-type]
            key: IdempotencyKey = None,
        ) -> CaseDetail:
            return await act(response, staff, cases, directory, code, key, body)

        return with_body

    OptionalBody = route.body | None

    async def with_optional_body(
        response: Response,
        staff: Officer,
        cases: Cases,
        directory: Directory,
        code: str,
        key: IdempotencyKey = None,
        body: OptionalBody = None,  # type: ignore[valid-type]
    ) -> CaseDetail:
        return await act(response, staff, cases, directory, code, key, body)

    return with_optional_body


for _route in ACTION_ROUTES:
    router.add_api_route(
        f"/cases/{{code}}/{_route.path}",
        _endpoint(_route),
        methods=["POST"],
        name=_route.path.replace("-", "_"),
        description=_route.summary,
        responses=problems(
            400,
            404,
            409,
            413,
            422,
            notes={
                409: "The lifecycle does not allow the action in the case's state "
                "(`allowed_actions` lists what it allows), or the case changed meanwhile",
                422: "Or a rule of the workflow refuses it (see the action's description)",
            },
        ),
    )

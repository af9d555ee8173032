"""What the officer API's routes depend on: the authenticated staff (recorded in the staff
directory as they call), the `Idempotency-Key`, the service layer main.py put on
`app.state.processing`; and the mapping of domain errors to RFC 9457 problems."""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import jwt
from fastapi import Depends, Header, Request

from services.processing.domain.authorisation import REFUSAL_MESSAGES
from services.processing.domain.errors import (
    CaseNotFound,
    InvalidCursor,
    NotAuthorised,
    ResultNotFound,
    StaffWithoutUnit,
    VersionConflict,
)
from services.processing.domain.lifecycle import TransitionError, allowed_actions
from services.processing.domain.workflow import WorkflowError
from services.processing.service.cases import ProcessingService
from services.processing.service.results import ResultDocuments
from services.processing.service.staff import StaffDirectory, UnitRequired
from shared.runtime.auth import FORBIDDEN_TITLE, Role, Staff, require_roles
from shared.runtime.http import Problem

if TYPE_CHECKING:
    from services.processing.main import Processing


def _processing(request: Request) -> "Processing":
    return request.app.state.processing  # type: ignore[no-any-return]


async def case_service(request: Request) -> ProcessingService:
    return _processing(request).service


async def result_documents(request: Request) -> ResultDocuments:
    return _processing(request).results


async def staff_directory(request: Request) -> StaffDirectory:
    return _processing(request).staff


def _token_username(request: Request) -> str | None:
    """The verified token's `preferred_username` (the provider's user name), if it has one: read
    again from the bearer token that `require_roles` has just verified."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        claims = jwt.decode(token.strip(), options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    username = claims.get("preferred_username")
    return username if isinstance(username, str) and username else None


def recorded(*roles: Role, action: str) -> Callable[..., Awaitable[Staff]]:
    """`require_roles(*roles)`, then the staff directory notes the caller (a database write at
    most every few minutes per member and process: `service/staff.py`)."""
    allowed = require_roles(*roles, action=action)

    async def recorded_staff(request: Request, staff: Annotated[Staff, Depends(allowed)]) -> Staff:
        await _processing(request).staff.seen(staff, lambda: _token_username(request))
        return staff

    return recorded_staff


Cases = Annotated[ProcessingService, Depends(case_service)]
Results = Annotated[ResultDocuments, Depends(result_documents)]
Directory = Annotated[StaffDirectory, Depends(staff_directory)]
Officer = Annotated[
    Staff, Depends(recorded(Role.officer, Role.unit_head, Role.admin, action="cases"))
]
Admin = Annotated[Staff, Depends(recorded(Role.admin, action="calendar_change"))]
# Who may list a unit's officers (the assignment form's choices).
Assigner = Annotated[Staff, Depends(recorded(Role.unit_head, Role.admin, action="staff_list"))]
# Officers of the case's unit, and intake's own service credential (role `result_reader`: not a
# person, so not recorded).
ResultReader = Annotated[
    Staff,
    Depends(
        recorded(
            Role.officer, Role.unit_head, Role.admin, Role.result_reader, action="result_download"
        )
    ),
]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]

DOCUMENT_NOT_FOUND = "Không tìm thấy tệp (document not found)"


@contextmanager
def domain_problems(action: str | None = None) -> Iterator[None]:
    """Answer the service layer's refusals as problems (`action`: the workflow action tried)."""
    try:
        yield
    except NotAuthorised as exc:
        raise Problem(
            403, FORBIDDEN_TITLE, REFUSAL_MESSAGES[exc.refusal], reason=exc.refusal.value
        ) from None
    except StaffWithoutUnit:
        raise Problem(403, FORBIDDEN_TITLE, "The token carries no unit.") from None
    except UnitRequired:
        raise Problem(
            422,
            "Chưa chọn đơn vị (unit required)",
            "An administrator without a unit names one: ?unit=.",
        ) from None
    except CaseNotFound as exc:
        raise Problem(404, "Không tìm thấy hồ sơ (case not found)", f"No case {exc}.") from None
    except ResultNotFound:
        raise Problem(404, DOCUMENT_NOT_FOUND) from None
    except InvalidCursor:
        raise Problem(400, "Con trỏ không hợp lệ (invalid cursor)") from None
    except TransitionError as exc:
        raise Problem(
            409,
            "Thao tác không phù hợp trạng thái hồ sơ (transition not allowed)",
            str(exc),
            state=int(exc.state),
            action=action or exc.action.value,
            allowed_actions=[a.value for a in allowed_actions(exc.state)],
        ) from None
    except WorkflowError as exc:
        raise Problem(
            422, "Vi phạm quy định xử lý hồ sơ (business rule)", str(exc), action=action
        ) from None
    except VersionConflict:
        raise Problem(
            409,
            "Hồ sơ vừa được cập nhật, vui lòng thử lại (concurrent change)",
            "The case changed while the action was applied; reload it and retry.",
        ) from None

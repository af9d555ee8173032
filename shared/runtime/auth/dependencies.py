"""FastAPI dependencies: the request's staff (401 without a valid token, 503 while the provider's
keys cannot be fetched), role requirements and unit scope (403), with their metrics."""

# No `from __future__ import annotations`: FastAPI resolves dependency annotations at runtime and
# cannot see closure variables (`Depends(authenticate)`) through string annotations.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from shared.runtime.auth.identity import AuthenticationError, KeysUnavailable, Role, Staff
from shared.runtime.auth.verifiers import JwtVerifier
from shared.runtime.http import Problem

AUTH_FAILURES = Counter(
    "dvc_auth_failures_total",
    "Bearer tokens rejected, by reason (missing, expired, invalid_signature, ...).",
    ["reason"],
)
FORBIDDEN = Counter(
    "dvc_forbidden_total",
    "Authenticated staff refused an action (missing role or other unit).",
    ["service", "action"],
)

UNAUTHENTICATED_TITLE = "Chưa xác thực (authentication required)"
KEYS_UNAVAILABLE_TITLE = "Chưa kiểm tra được đăng nhập (identity provider unavailable)"
FORBIDDEN_TITLE = "Không có quyền (forbidden)"

VerifierGetter = Callable[[Request], JwtVerifier]
_bearer = HTTPBearer(auto_error=False, description="Staff access token (JWT).")


def verifier_from_app(request: Request) -> JwtVerifier:
    """The verifier each app installs at startup as `app.state.jwt_verifier`."""
    verifier = getattr(request.app.state, "jwt_verifier", None)
    if not isinstance(verifier, JwtVerifier):
        # Fail closed (500), never open: a missing verifier is a deployment bug.
        raise RuntimeError("app.state.jwt_verifier is not configured")
    return verifier


def _unauthenticated(reason: str, detail: str) -> Problem:
    AUTH_FAILURES.labels(reason).inc()
    # RFC 6750 §3.1: no error code when the request carried no credentials at all.
    challenge = "Bearer" if reason == "missing" else 'Bearer error="invalid_token"'
    return Problem(401, UNAUTHENTICATED_TITLE, detail, headers={"WWW-Authenticate": challenge})


def staff_dependency(
    verifier_getter: VerifierGetter = verifier_from_app,
) -> Callable[..., Awaitable[Staff]]:
    """A dependency resolving the request's `Authorization: Bearer` token to `Staff` (or 401)."""

    async def authenticated_staff(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Staff:
        if credentials is None:
            raise _unauthenticated("missing", "Send the staff access token as a Bearer token.")
        verifier = verifier_getter(request)
        try:
            staff = await verifier.averify(credentials.credentials)
        except AuthenticationError as exc:
            raise _unauthenticated(exc.reason, exc.detail) from None
        except KeysUnavailable:
            AUTH_FAILURES.labels("keys_unavailable").inc()
            raise Problem(
                503,
                KEYS_UNAVAILABLE_TITLE,
                "The identity provider's keys could not be fetched; try again shortly.",
                headers={"Retry-After": "5"},
            ) from None
        request.state.staff = staff  # for access logs and audit trails
        return staff

    return authenticated_staff


current_staff = staff_dependency()
CurrentStaff = Annotated[Staff, Depends(current_staff)]


def _service_label(request: Request) -> str:
    return str(getattr(request.app.state, "service_name", None) or request.app.title)


def _action_label(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def _forbidden(service: str, action: str, detail: str) -> Problem:
    FORBIDDEN.labels(service, action).inc()
    return Problem(403, FORBIDDEN_TITLE, detail)


def require_roles(
    *roles: Role | str,
    action: str | None = None,
    authenticate: Callable[..., Awaitable[Staff]] = current_staff,
) -> Callable[..., Awaitable[Staff]]:
    """A dependency returning the staff if they hold at least one of `roles`, else 403.

    `admin` is not implied: list it when admins may act. `action` labels the forbidden metric
    (default: method and route template).
    """
    if not roles:
        raise ValueError("require_roles needs at least one role")
    wanted = tuple(Role(r) for r in roles)  # a typo fails at import, not at request time
    names = ", ".join(wanted)

    async def staff_with_role(
        request: Request, staff: Annotated[Staff, Depends(authenticate)]
    ) -> Staff:
        if not staff.has_role(*wanted):
            raise _forbidden(
                _service_label(request),
                action or _action_label(request),
                f"This action needs one of the roles: {names}.",
            )
        return staff

    return staff_with_role


def ensure_same_unit(
    staff: Staff, unit_code: str | None, *, service: str = "unknown", action: str = "unit_scope"
) -> None:
    """403 unless the staff is an admin or belongs to `unit_code`."""
    if staff.is_admin or (staff.unit is not None and staff.unit == unit_code):
        return
    raise _forbidden(service, action, "This record belongs to another unit.")

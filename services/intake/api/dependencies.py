"""What the routes depend on: the service layer and the rate limits that `services.intake.main`
puts on `app.state.intake` (its `IntakeComponents`), and the dossier a citizen opens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from services.intake.adapters.protection import RateLimits, client_address
from services.intake.domain.dossier import Dossier
from services.intake.domain.errors import DossierNotFound
from services.intake.service import IntakeService
from shared.runtime.auth import Role, Staff, require_roles
from shared.runtime.http import problems


async def intake_service(request: Request) -> IntakeService:
    service: IntakeService = request.app.state.intake.service
    return service


async def rate_limits(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.intake.limits
    return limits


Intake = Annotated[IntakeService, Depends(intake_service)]
Limits = Annotated[RateLimits, Depends(rate_limits)]


async def dossier_for_citizen(
    code: str,
    request: Request,
    intake: Intake,
    limits: Limits,
    secret: Annotated[
        str | None,
        Query(max_length=100, description="From the receipt (or send `X-Tracking-Secret`)"),
    ] = None,
    x_tracking_secret: Annotated[
        str | None, Header(max_length=100, description="The receipt's tracking secret")
    ] = None,
) -> Dossier:
    """The dossier, if the secret matches; wrong secrets are throttled per client, and an unknown
    code answers exactly like a wrong secret so that codes cannot be enumerated."""
    client = client_address(request)
    limits.check_tracking(client)
    try:
        return await intake.dossiers.open(code, x_tracking_secret or secret)
    except DossierNotFound:
        limits.record_wrong_secret(client)
        raise


CitizenDossier = Annotated[Dossier, Depends(dossier_for_citizen)]

_CITIZEN_NOTES = {
    404: "No dossier with this code and secret (an unknown code answers the same)",
    429: "Too many requests, or too many wrong secrets, from this client",
}


def citizen_problems(*more: int, notes: dict[int, str] | None = None) -> dict[int | str, Any]:
    """The problems of a route a citizen reaches with the dossier's code and secret, and `more`."""
    statuses = sorted({404, 422, 429, *more})
    return problems(*statuses, notes={**_CITIZEN_NOTES, **(notes or {})})


CounterOfficer = Annotated[Staff, Depends(require_roles(Role.counter_officer, Role.admin))]
AdminStaff = Annotated[Staff, Depends(require_roles(Role.admin))]

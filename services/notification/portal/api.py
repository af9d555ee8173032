"""Operators' view of the national-portal synchronisation (administrators only): counts, one
dossier's sync state, and resync — what `python -m services.notification.portal` does, over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.notification.portal.domain.sync_status import SYNCED
from services.notification.portal.service import PortalSync
from shared.contracts.events import DossierCode
from shared.runtime.auth import Role, Staff, require_roles
from shared.runtime.http import Problem, problems

router = APIRouter(
    prefix="/api/v1/portal-sync",
    tags=["national portal sync (operators)"],
    responses=problems(401, 403, 503, notes={503: "Or the sync is not enabled"}),
)
Admin = Annotated[Staff, Depends(require_roles(Role.admin))]


async def portal_sync(request: Request) -> PortalSync:
    """The service layer `services.notification.main` put on the app (None when disabled)."""
    sync: PortalSync | None = getattr(request.app.state, "portal", None)
    if sync is None:
        raise Problem(503, "Chưa bật đồng bộ Cổng DVC quốc gia (portal sync is not enabled)")
    return sync


Sync = Annotated[PortalSync, Depends(portal_sync)]


class SyncSummary(BaseModel):
    counts: dict[str, int]
    share_synced: float


class DossierSync(BaseModel):
    dossier_code: str
    status: str
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    synced_at: datetime | None = None
    steps_sent: int = 0


class ResyncOutcome(BaseModel):
    outcomes: dict[str, str]


@router.get("", response_model=SyncSummary)
async def summary(sync: Sync, _: Admin) -> Any:
    """Dossiers per sync status and the synchronised share (a national indicator)."""
    counts = await sync.refresh_metrics()
    total = sum(counts.values())
    return SyncSummary(counts=counts, share_synced=counts[SYNCED] / total if total else 1.0)


@router.get(
    "/dossiers/{code}",
    response_model=DossierSync,
    responses=problems(404, 422, notes={404: "The sync has not recorded this dossier"}),
)
async def dossier_sync(code: DossierCode, sync: Sync, _: Admin) -> Any:
    state = await sync.sync_state(code)
    if state is None:
        raise Problem(404, "Hồ sơ chưa được ghi nhận để đồng bộ (dossier not known to the sync)")
    return DossierSync(
        dossier_code=code,
        status=state.get("status", "unknown"),
        attempts=state.get("attempts", 0),
        last_error=state.get("last_error"),
        next_attempt_at=state.get("next_attempt_at"),
        synced_at=state.get("synced_at"),
        steps_sent=len(state.get("steps_sent") or []),
    )


@router.post("/dossiers/{code}/resync", response_model=ResyncOutcome, responses=problems(422))
async def resync_dossier(code: DossierCode, sync: Sync, _: Admin) -> Any:
    """Send the dossier and its steps again now, rebuilt from the stored facts (idempotent)."""
    return ResyncOutcome(outcomes=await sync.resync([code]))


@router.post("/resync-failed", response_model=ResyncOutcome)
async def resync_failed(sync: Sync, _: Admin) -> Any:
    return ResyncOutcome(outcomes=await sync.resync_failed())

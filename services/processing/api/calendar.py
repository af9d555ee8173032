"""The working calendar: the administrators' announced days off and extra working days, layered
on the official calendar."""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
from fastapi import APIRouter

from services.processing.api.dependencies import Admin, Cases, Officer
from services.processing.api.schemas import CalendarChangeBody, CalendarDay
from services.processing.domain.calendar import CalendarChange
from shared.runtime.http import problems

router = APIRouter(
    prefix="/api/v1", tags=["officer", "calendar"], responses=problems(401, 403, 503)
)


@router.get("/calendar/changes")
async def calendar_changes(staff: Officer, cases: Cases) -> list[CalendarDay]:
    """The announced changes layered on the official calendar (later entries win)."""
    return [CalendarDay.of(change) for change in await cases.calendar_changes()]


@router.post("/calendar/changes", status_code=201, responses=problems(400, 413, 422))
async def add_calendar_change(staff: Admin, cases: Cases, body: CalendarChangeBody) -> CalendarDay:
    """Enter an announced day off or extra working day; applies to due dates computed from now
    on (due dates already in force are kept, R8). Answers the day as the calendar now has it."""
    change = CalendarChange(body.day, body.working, body.reason)
    return CalendarDay.of(await cases.add_calendar_change(change, staff.subject))

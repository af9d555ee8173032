"""The staff directory: the officers of a unit, for the unit head's assignment form.

Processing records each staff member who calls its officer API (`service/staff.py`), so the list
holds the unit's officers who have worked on the platform at least once, by name. It is a
convenience: an assignment is decided by the assign action, not by this list.
"""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.processing.adapters.staff import StaffMember
from services.processing.api.dependencies import Assigner, Directory, domain_problems
from shared.runtime.http import problems

router = APIRouter(prefix="/api/v1", tags=["officer", "staff"], responses=problems(401, 403, 503))


class StaffEntry(BaseModel):
    subject: str = Field(description="The provider's subject: the value an assignment names")
    name: str | None = Field(description="The name the token carried")
    username: str | None = Field(description="The provider's user name (`preferred_username`)")
    unit: str | None
    last_seen: datetime = Field(description="When processing last recorded a call of theirs")

    @classmethod
    def of(cls, member: StaffMember) -> "StaffEntry":
        return cls(
            subject=member.subject,
            name=member.name,
            username=member.username,
            unit=member.unit,
            last_seen=member.last_seen,
        )


@router.get(
    "/staff",
    responses=problems(422, notes={422: "An administrator without a unit names none"}),
)
async def unit_officers(
    staff: Assigner,
    directory: Directory,
    unit: Annotated[str | None, Query(max_length=40, description="admins only")] = None,
) -> list[StaffEntry]:
    """The officers (role `officer`) of the caller's unit who have called processing at least
    once, by name: unit heads their own unit only, administrators any (`?unit=`)."""
    with domain_problems():
        officers = await directory.officers(staff, unit)
    return [StaffEntry.of(member) for member in officers]

"""The staff directory's use cases: record who calls the officer API, and list a unit's officers
for the unit head's assignment form (`GET /api/v1/staff`).

Recording costs no database round trip on most requests: each process remembers, for at most
`MAX_REMEMBERED` subjects, when it last recorded one and what their token said, and writes again
only after `RECORD_EVERY` or when the token says something else (another unit, name or roles).
A failed write is logged and forgotten: the request it rides on goes on (the directory is a
convenience), and the next request of that member tries again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.processing.adapters.staff import StaffMember, StaffStore
from services.processing.domain.authorisation import VIEW, refusal
from services.processing.domain.errors import NotAuthorised, StaffWithoutUnit
from shared.runtime.auth import Role, Staff

log = logging.getLogger(__name__)

RECORD_EVERY = timedelta(minutes=10)
MAX_REMEMBERED = 10_000
# Roles of people (not `result_reader`, a service's own credential): those are recorded.
PEOPLE = frozenset({Role.officer, Role.unit_head, Role.admin, Role.counter_officer})

Fingerprint = tuple[str | None, str | None, tuple[str, ...]]


class UnitRequired(ValueError):
    """An administrator without a unit asked for a unit's staff without naming one."""


@dataclass
class StaffDirectory:
    store: StaffStore
    every: timedelta = RECORD_EVERY
    max_remembered: int = MAX_REMEMBERED
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # subject -> (what the token said, when it was recorded); oldest first.
    _recorded: OrderedDict[str, tuple[Fingerprint, datetime]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )

    async def seen(self, staff: Staff, username: Callable[[], str | None]) -> None:
        """`staff` called the officer API (their token verified). `username` reads the token's
        `preferred_username`, only when a record is written."""
        if not staff.roles & PEOPLE:
            return
        now = self.clock()
        said: Fingerprint = (staff.name, staff.unit, tuple(sorted(staff.roles)))
        last = self._recorded.get(staff.subject)
        if last is not None and last[0] == said and now - last[1] < self.every:
            return
        self._remember(staff.subject, said, now)  # concurrent requests write once
        try:
            await self.store.record(
                subject=staff.subject,
                name=staff.name,
                username=username(),
                unit=staff.unit,
                roles=staff.roles,
                at=now,
            )
        except Exception as error:  # the directory is a convenience: the request goes on
            self._recorded.pop(staff.subject, None)
            log.warning("the staff directory did not record %s: %r", staff.subject, error)

    def _remember(self, subject: str, said: Fingerprint, at: datetime) -> None:
        self._recorded[subject] = (said, at)
        self._recorded.move_to_end(subject)
        while len(self._recorded) > self.max_remembered:
            self._recorded.popitem(last=False)

    async def name_of(self, subject: str) -> str | None:
        """The name to show for `subject` (None when unknown or the directory is unreachable:
        the id is shown instead)."""
        try:
            return await self.store.name_of(subject)
        except Exception as error:  # the directory is a convenience
            log.warning("the staff directory could not name %s: %r", subject, error)
            return None

    async def officers(self, staff: Staff, unit: str | None = None) -> list[StaffMember]:
        """The officers (role `officer`) of a unit who have called processing: the caller's own
        unit (unit heads may name only it), any unit for administrators."""
        chosen = unit or staff.unit
        if chosen is None:
            if staff.is_admin:
                raise UnitRequired
            raise StaffWithoutUnit
        why = refusal(staff.roles, staff.unit, chosen, VIEW)
        if why is not None:
            raise NotAuthorised(why, "staff_list")
        members = await self.store.members_of(chosen)
        return [m for m in members if Role.officer in m.roles]

"""Why a use case of processing refuses or fails; the officer API maps each to an RFC 9457 problem.

The lifecycle's `TransitionError` and the business rules' `WorkflowError` stay beside the rules
that raise them (`lifecycle.py`, `workflow.py`).
"""

from __future__ import annotations

from services.processing.domain.authorisation import Refusal
from shared.runtime.failures import AwaitingEarlierEvent


class CaseNotFound(LookupError):
    """No case has this dossier code."""


class CaseNotYetKnown(AwaitingEarlierEvent):
    """An applicant's event arrived before the dossier's submitted event (other topic): held and
    retried by the consumer, dead-lettered if the case never appears."""


class VersionConflict(Exception):
    """The case changed since it was read (another officer or event acted first)."""


class NotAuthorised(Exception):
    """The staff member may not take `action` on the case (`authorisation.refusal`)."""

    def __init__(self, refusal: Refusal, action: str) -> None:
        super().__init__(f"{action}: {refusal.value}")
        self.refusal = refusal
        self.action = action


class StaffWithoutUnit(Exception):
    """A non-administrator's token carries no unit, so no worklist can be chosen."""


class InvalidCursor(ValueError):
    """A worklist cursor this service did not make."""


class ResultNotFound(LookupError):
    """No issued result document has this storage id (or its case is gone)."""

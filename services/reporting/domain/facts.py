"""What each dossier event tells reporting about its dossier (pure).

Reporting keeps one facts document per dossier: the submission (`submitted`) and the lists of
processing steps, payments, notifications, supplements and withdrawal requests, each entry as the
event gave it, and the applicant's satisfaction rating (`rating`, one per dossier).
`domain.contributions` derives the dossier's counters from these facts, so events may arrive in
any order across topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.contracts.events import (
    DossierEvent,
    DossierNotified,
    DossierPaid,
    DossierProcessed,
    DossierRated,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)


@dataclass(frozen=True)
class FactsUpdate:
    """One event's addition to its dossier's facts: `value` becomes the fact `name` (`appended`
    False: the submission), or is appended to the list `name` (steps, payments...)."""

    name: str
    value: dict[str, Any]
    appended: bool = True
    # Usually its dossier's first event (the submission): the store may try to create the
    # dossier's document outright instead of updating one.
    opens_dossier: bool = False


def with_fact(facts: dict[str, Any], update: FactsUpdate, value: Any) -> dict[str, Any]:
    """A copy of a dossier's `facts` with `value` (the update's value, as the store keeps it)
    added as the fact `update.name`."""
    added = dict(facts)
    if update.appended:
        added[update.name] = [*facts.get(update.name, []), value]
    else:
        added[update.name] = value
    return added


def facts_update(event: DossierEvent) -> FactsUpdate:
    """The facts one dossier event adds."""
    match event:
        case DossierSubmitted():
            submitted = {
                "unit": event.unit_code,
                "procedure": event.procedure_code,
                "level": event.level,
                "channel": int(event.channel),
                "at": event.occurred_at,
                "fee_vnd": event.fee_vnd,
                "documents": len(event.documents),
            }
            return FactsUpdate("submitted", submitted, appended=False, opens_dossier=True)
        case DossierProcessed():
            step = {
                "action": event.action,
                "state": int(event.state),
                "previous_state": None
                if event.previous_state is None
                else int(event.previous_state),
                "at": event.occurred_at,
                "due_at": event.due_at,
                "electronic_result": event.result_document is not None,
            }
            return FactsUpdate("steps", step)
        case DossierPaid():
            return FactsUpdate("payments", {"at": event.occurred_at, "amount": event.amount_vnd})
        case DossierNotified():
            note = {"at": event.occurred_at, "status": event.status, "channel": event.channel}
            return FactsUpdate("notifications", note)
        case DossierSupplemented():
            return FactsUpdate("supplements", {"at": event.occurred_at})
        case DossierWithdrawn():
            return FactsUpdate("withdrawal_requests", {"at": event.occurred_at})
        case DossierRated():
            rating = {"at": event.occurred_at, "score": event.score}
            return FactsUpdate("rating", rating, appended=False)
    raise TypeError(f"not a dossier event: {type(event).__name__}")

"""Subscriptions of the reporting service: every dossier topic and the catalogue, from the start.

Each handler turns its event into facts about the dossier (see `store.ReportingStore.record`);
the counters follow from the facts, so events may arrive in any order across topics.
"""

from __future__ import annotations

from typing import Any

from services.reporting.store import ReportingStore
from shared.catalogue import Procedure
from shared.cloudevents import CloudEvent
from shared.events import (
    DossierNotified,
    DossierPaid,
    DossierProcessed,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import REPORTING_GROUP


def facts_update(event: Any) -> dict[str, Any]:
    """The MongoDB update recording what one dossier event tells reporting."""
    match event:
        case DossierSubmitted():
            return {
                "$set": {
                    "submitted": {
                        "unit": event.unit_code,
                        "procedure": event.procedure_code,
                        "level": event.level,
                        "channel": int(event.channel),
                        "at": event.occurred_at,
                        "fee_vnd": event.fee_vnd,
                        "documents": len(event.documents),
                    }
                }
            }
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
            return {"$push": {"steps": step}}
        case DossierPaid():
            return {"$push": {"payments": {"at": event.occurred_at, "amount": event.amount_vnd}}}
        case DossierNotified():
            note = {"at": event.occurred_at, "status": event.status, "channel": event.channel}
            return {"$push": {"notifications": note}}
        case DossierSupplemented():
            return {"$push": {"supplements": {"at": event.occurred_at}}}
        case DossierWithdrawn():
            return {"$push": {"withdrawal_requests": {"at": event.occurred_at}}}
    raise TypeError(f"not a dossier event: {type(event).__name__}")


def handlers_for(store: ReportingStore) -> dict[type, Any]:
    async def on_procedure(event: Procedure, cloud_event: CloudEvent) -> None:
        await store.save_procedure(event)

    async def on_dossier_event(event: Any, cloud_event: CloudEvent) -> None:
        await store.record(event.dossier_code, cloud_event.id, facts_update(event))

    return {
        Procedure: on_procedure,
        DossierSubmitted: on_dossier_event,
        DossierSupplemented: on_dossier_event,
        DossierWithdrawn: on_dossier_event,
        DossierPaid: on_dossier_event,
        DossierProcessed: on_dossier_event,
        DossierNotified: on_dossier_event,
    }


def register(context: ServiceContext, store: ReportingStore) -> None:
    subscribe_dossier_events(context, group=REPORTING_GROUP, handlers=handlers_for(store))

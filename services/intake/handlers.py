"""Intake's subscriptions: the citizen-facing status view and the portal inbox."""

from __future__ import annotations

import logging

from services.intake.runtime import IntakeRuntime
from shared.cloudevents import CloudEvent
from shared.consumer import PermanentError
from shared.events import DossierNotified, DossierProcessed
from shared.service import ServiceContext, subscribe_dossier_events
from shared.topics import INTAKE_GROUP

log = logging.getLogger(__name__)

# Internal steps that change nothing the citizen sees but the history.
WARNING_ACTIONS_PREFIX = "deadline_warning"


def register(context: ServiceContext, runtime: IntakeRuntime) -> None:
    async def on_processed(event: DossierProcessed, cloud_event: CloudEvent) -> None:
        await apply_processed(runtime, event, cloud_event)

    async def on_notified(event: DossierNotified, cloud_event: CloudEvent) -> None:
        await apply_notified(runtime, event, cloud_event)

    subscribe_dossier_events(
        context,
        group=INTAKE_GROUP,
        handlers={DossierProcessed: on_processed, DossierNotified: on_notified},
    )


async def apply_processed(
    runtime: IntakeRuntime, event: DossierProcessed, cloud_event: CloudEvent
) -> None:
    if event.action.startswith(WARNING_ACTIONS_PREFIX):
        return  # internal to the unit; nothing for the citizen's view
    status = {
        "status.state": int(event.state),
        "status.action": event.action,
        "status.due_at": event.due_at,
        "status.citizen_action": event.citizen_action,
        "status.requested_documents": event.requested_documents,
        "status.unit_code": event.unit_code,
        "status.updated_at": event.occurred_at,
        "status.supplement_sent": False,  # a new step: a new supplement request may follow
    }
    if event.action == "overdue":
        status = {"status.overdue": True, "status.updated_at": event.occurred_at}
    if event.result_document is not None:
        status["status.result_document"] = event.result_document.model_dump(mode="json")
    step = {
        "at": event.occurred_at,
        "state": int(event.state),
        "action": event.action,
        "unit_code": event.unit_code,
        "note": event.note,
    }
    await _apply(
        runtime, event.dossier_code, cloud_event, {"$set": status, "$push": {"history": step}}
    )


async def apply_notified(
    runtime: IntakeRuntime, event: DossierNotified, cloud_event: CloudEvent
) -> None:
    if event.channel != "inbox" or event.body is None:
        return
    message = {
        "notification_id": event.notification_id,
        "at": event.occurred_at,
        "title": event.title,
        "body": event.body,
    }
    await _apply(runtime, event.dossier_code, cloud_event, {"$push": {"inbox": message}})


async def _apply(runtime: IntakeRuntime, code: str, cloud_event: CloudEvent, update: dict) -> None:
    if await runtime.store.apply_event_once(code, cloud_event.id, update):
        return
    if not await runtime.store.dossier_exists(code):
        # Every dossier starts at intake, so an event for an unknown one is not ours to fix.
        raise PermanentError(f"no dossier {code} at intake")
    log.info("event %s already applied", cloud_event.id)

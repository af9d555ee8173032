"""The public dossier-status stream for other agencies (`dvc.public.dossier-status.v1`).

A projection of the internal dossier events without personal data: the model carries no field
for it, so nothing personal can leak by mistake. Each projected event's id is derived from the
source event's id, so a redelivered source event republishes the same id and subscribers
deduplicate it. (Pure: `services.notification.webhooks.service.PublicStream` publishes it.)
"""

from __future__ import annotations

import uuid

from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import (
    DossierProcessed,
    DossierState,
    DossierSubmitted,
    PublicDossierStatus,
    PublicStep,
)

SOURCE = "/dvc/notification/public-stream"
_NAMESPACE = uuid.UUID("6f1c3a52-6d0e-4d7c-9a51-3b8f0e2f4c11")


def project(event: DossierSubmitted | DossierProcessed) -> PublicDossierStatus:
    """The public view of one internal step (pure)."""
    if isinstance(event, DossierSubmitted):
        return PublicDossierStatus(
            dossier_code=event.dossier_code,
            occurred_at=event.occurred_at,
            procedure_code=event.procedure_code,
            unit_code=event.unit_code,
            state=DossierState.SUBMITTED if event.channel == 2 else DossierState.RECEIVED,
            action=PublicStep.SUBMIT,
            channel=event.channel,
        )
    return PublicDossierStatus(
        dossier_code=event.dossier_code,
        occurred_at=event.occurred_at,
        procedure_code=event.procedure_code,
        unit_code=event.unit_code,
        state=event.state,
        action=PublicStep.of(event.action),
        due_at=event.due_at,
    )


def is_public(event: DossierSubmitted | DossierProcessed) -> bool:
    """Deadline warnings are internal to the unit; every other step is public."""
    return not isinstance(event, DossierProcessed) or event.action.is_public


def public_cloud_event(
    event: DossierSubmitted | DossierProcessed, source_event: CloudEvent
) -> CloudEvent:
    """The public CloudEvent of one internal step; its id follows from the source event's id."""
    event_id = str(uuid.uuid5(_NAMESPACE, source_event.id))
    return wrap(project(event), SOURCE, event_id=event_id)

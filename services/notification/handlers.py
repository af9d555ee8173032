"""Subscriptions of the notification service: the receipt on submission, a message per step."""

from __future__ import annotations

import logging
from typing import Any

from services.notification import metrics
from services.notification.domain.mapping import MessageKind, kind_for_step, template_name
from services.notification.domain.routing import CHANNELS, route
from services.notification.notifier import Notifier
from services.notification.rendering import TemplateRenderer
from services.notification.settings import NotificationSettings
from services.notification.store import Document, NotificationStore
from shared.cloudevents import CloudEvent
from shared.consumer import PermanentError
from shared.events import DossierProcessed, DossierSubmitted
from shared.logging import mask

log = logging.getLogger(__name__)

# Optional key of the submitted form naming the citizen's channel order, e.g. ["email", "sms"].
CHANNEL_ORDER_FORM_KEY = "notification_channels"


class RecipientNotKnownYet(Exception):
    """A step arrived before its dossier's submitted event (another topic): retried by the
    consumer; dead-lettered if the contact details never come."""


class NotificationHandlers:
    def __init__(
        self,
        *,
        store: NotificationStore,
        notifier: Notifier,
        renderer: TemplateRenderer,
        settings: NotificationSettings,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.renderer = renderer
        self.settings = settings

    async def on_submitted(self, event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        recipient: Document = {
            "applicant_name": event.applicant.name,
            "phone": event.contact.phone,
            "email": event.contact.email,
            "channel_order": _channel_order(event.form, self.settings.default_channel_order),
            "locale": self.settings.default_locale,
            "unit_code": event.unit_code,
            "procedure_code": event.procedure_code,
            "fee_vnd": event.fee_vnd,
            "submitted_at": event.occurred_at,
        }
        await self.store.save_recipient(event.dossier_code, recipient)
        log.info(
            "contact stored (phone %s, e-mail %s)",
            mask(event.contact.phone),
            mask(event.contact.email),
        )
        await self._send(MessageKind.RECEIPT, cloud_event.id, event.dossier_code, recipient, {})

    async def on_processed(self, event: DossierProcessed, cloud_event: CloudEvent) -> None:
        kind = kind_for_step(event.action, event.state, event.previous_state)
        if kind is None:
            metrics.EVENTS_SKIPPED.labels("internal-step").inc()
            return
        recipient = await self.store.recipient(event.dossier_code)
        if recipient is None:
            raise RecipientNotKnownYet(f"no contact details for {event.dossier_code} yet")
        step = {
            "due_at": event.due_at,
            "note": event.note,
            "citizen_action": event.citizen_action,
            "requested_documents": list(event.requested_documents),
            "result_document": event.result_document.file_name if event.result_document else None,
        }
        await self._send(kind, cloud_event.id, event.dossier_code, recipient, step)

    async def _send(
        self,
        kind: MessageKind,
        source_event_id: str,
        dossier_code: str,
        recipient: Document,
        step: dict[str, Any],
    ) -> None:
        context = {
            "dossier_code": dossier_code,
            "procedure_code": recipient.get("procedure_code"),
            "applicant_name": recipient.get("applicant_name"),
            "submitted_at": recipient.get("submitted_at"),
            "fee_vnd": recipient.get("fee_vnd") or 0,
            "tracking_url": self.settings.tracking_url,
            "due_at": None,
            "note": None,
            "citizen_action": None,
            "requested_documents": [],
            "result_document": None,
            **step,
        }
        try:
            rendered = self.renderer.render(
                template_name(kind), context, recipient.get("locale") or "vi"
            )
        except Exception as exc:  # a template that cannot render never will
            raise PermanentError(f"template {template_name(kind)}: {exc}") from exc
        hops = route(
            recipient.get("channel_order") or self.settings.default_channel_order,
            phone=recipient.get("phone"),
            email=recipient.get("email"),
        )
        await self.notifier.create_message(
            source_event_id=source_event_id,
            dossier_code=dossier_code,
            unit_code=recipient.get("unit_code"),
            rendered=rendered,
            hops=hops,
        )


def _channel_order(form: dict[str, Any], default: list[str]) -> list[str]:
    chosen = form.get(CHANNEL_ORDER_FORM_KEY)
    if isinstance(chosen, list):
        order = [c for c in chosen if isinstance(c, str) and c in CHANNELS]
        if order:
            return order
    return list(default)

"""The citizen messages' use cases: a receipt on submission, a message per workflow step (rendered,
routed over the citizen's channels and handed to the `Notifier`), SMS delivery receipts, and the
delivery log and inbox that staff read."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from services.notification import metrics
from services.notification.citizens.adapters.templates import TemplateRenderer
from services.notification.citizens.domain.erasure import ERASABLE, FINISHED_AT, FINISHED_STATES
from services.notification.citizens.domain.errors import RecipientNotKnownYet, UnknownDossier
from services.notification.citizens.domain.mapping import MessageKind, kind_for_step, template_name
from services.notification.citizens.domain.ports import Document, MessageStore
from services.notification.citizens.domain.routing import CHANNELS, route
from services.notification.citizens.domain.signature import ReceiptCheck, verify
from services.notification.citizens.notifier import Notifier
from services.notification.settings import NotificationSettings
from shared.contracts.events import DossierProcessed, DossierSubmitted
from shared.runtime.consumer import PermanentError
from shared.runtime.logging import mask

log = logging.getLogger(__name__)

# Optional key of the submitted form naming the citizen's channel order, e.g. ["email", "sms"].
CHANNEL_ORDER_FORM_KEY = "notification_channels"


class CitizenMessages:
    def __init__(
        self,
        *,
        store: MessageStore,
        notifier: Notifier,
        renderer: TemplateRenderer,
        settings: NotificationSettings,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.renderer = renderer
        self.settings = settings

    # ------------------------------------------------------------------ events

    async def dossier_submitted(self, event: DossierSubmitted, source_event_id: str) -> None:
        """Keep the contact details and send the receipt."""
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
        # Both at once (two collections, one round trip of waiting): the dossier's next event is
        # handled once both are written, and a retried event writes the same again.
        await asyncio.gather(
            self.store.save_recipient(event.dossier_code, recipient, new=True),
            self._send(MessageKind.RECEIPT, source_event_id, event.dossier_code, recipient, {}),
        )
        log.info(
            "contact stored (phone %s, e-mail %s)",
            mask(event.contact.phone),
            mask(event.contact.email),
        )

    async def dossier_processed(self, event: DossierProcessed, source_event_id: str) -> None:
        """The message of a workflow step, if the citizen is told of it."""
        if event.state in FINISHED_STATES:
            await self._mark_finished(event)
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
        if event.amount_vnd is not None:  # a payment request: the amount the unit asked
            step["fee_vnd"] = event.amount_vnd
        await self._send(kind, source_event_id, event.dossier_code, recipient, step)

    async def _mark_finished(self, event: DossierProcessed) -> None:
        """The dossier finished: its contact details' retention starts (`erasure`). Only on a
        recipient already known (an upsert would make one without contact details)."""
        if await self.store.recipient(event.dossier_code) is not None:
            await self.store.save_recipient(
                event.dossier_code, {FINISHED_AT: event.occurred_at, ERASABLE: True}
            )

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

    # ------------------------------------------------------------------ SMS receipts

    def check_receipt(
        self, *, timestamp: str | None, signature: str | None, body: bytes
    ) -> ReceiptCheck:
        """The signature check of an SMS gateway receipt (HMAC-SHA256 over `<timestamp>.<body>`,
        within the tolerance)."""
        return verify(
            self.settings.sms_receipt_secret.get_secret_value().encode(),
            timestamp=timestamp,
            signature=signature,
            body=body,
            now=time.time(),
            tolerance=self.settings.sms_receipt_tolerance_seconds,
        )

    async def apply_receipt(self, reference: str, *, delivered: bool, error: str | None) -> str:
        """A checked receipt: delivered, failed (and fallback), duplicate or unknown."""
        return await self.notifier.apply_receipt(reference, delivered=delivered, error=error)

    # ------------------------------------------------------------------ staff views

    async def unit_of(self, dossier_code: str) -> str | None:
        """The unit a dossier's messages belong to (None when not recorded); `UnknownDossier`
        when the service knows nothing of it."""
        recipient = await self.store.recipient(dossier_code)
        if recipient is None and not await self.store.deliveries_for(dossier_code):
            raise UnknownDossier(dossier_code)
        return recipient.get("unit_code") if recipient else None

    async def deliveries(self, dossier_code: str) -> list[Document]:
        """Every delivery of a dossier's messages, oldest first."""
        return await self.store.deliveries_for(dossier_code)

    async def inbox(self, dossier_code: str) -> list[Document]:
        """The portal inbox messages of a dossier, oldest first."""
        return await self.store.inbox_for(dossier_code)


def _channel_order(form: dict[str, Any], default: list[str]) -> list[str]:
    chosen = form.get(CHANNEL_ORDER_FORM_KEY)
    if isinstance(chosen, list):
        order = [c for c in chosen if isinstance(c, str) and c in CHANNELS]
        if order:
            return order
    return list(default)

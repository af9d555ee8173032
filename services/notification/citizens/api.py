"""HTTP routes: the SMS gateway's signed delivery receipts, delivery status and inbox for staff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ValidationError

from services.notification import metrics
from services.notification.citizens.domain.errors import UnknownDossier
from services.notification.citizens.domain.signature import ReceiptCheck
from services.notification.citizens.service import CitizenMessages
from shared.contracts.events import DossierCode
from shared.runtime.auth import CurrentStaff, ensure_same_unit
from shared.runtime.http import Problem, inline_schema, problems
from shared.runtime.logging import mask

router = APIRouter(prefix="/notifications", tags=["notifications"], responses=problems(503))


async def citizen_messages(request: Request) -> CitizenMessages:
    """The service layer `services.notification.main` put on the app."""
    messages: CitizenMessages = request.app.state.citizens
    return messages


Messages = Annotated[CitizenMessages, Depends(citizen_messages)]


class SmsReceipt(BaseModel):
    reference: str  # our notification id, sent to the gateway with the message
    status: Literal["delivered", "failed"]
    error: str | None = None


class ReceiptAnswer(BaseModel):
    outcome: str


@router.post(
    "/sms/receipts",
    response_model=ReceiptAnswer,
    responses=problems(
        401,
        404,
        413,
        422,
        notes={
            401: "The signature or its timestamp is refused",
            404: "No message with this reference",
            422: "Or the body is not a receipt",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(SmsReceipt)}},
        }
    },
)
async def sms_receipt(
    request: Request,
    messages: Messages,
    x_timestamp: Annotated[str | None, Header()] = None,
    x_signature: Annotated[str | None, Header()] = None,
) -> ReceiptAnswer:
    """Delivery receipt from the SMS gateway, signed with HMAC-SHA256 over
    `<X-Timestamp>.<raw body>` (hex in `X-Signature`)."""
    body = await request.body()
    check = messages.check_receipt(timestamp=x_timestamp, signature=x_signature, body=body)
    if check != ReceiptCheck.OK:
        metrics.RECEIPTS.labels(check.value).inc()
        raise Problem(401, "Chữ ký không hợp lệ (invalid receipt signature)", check.value)
    try:
        receipt = SmsReceipt.model_validate_json(body)
    except ValidationError as exc:
        metrics.RECEIPTS.labels("invalid").inc()
        raise Problem(422, "Biên nhận không hợp lệ (invalid receipt)", str(exc)[:500]) from None
    outcome = await messages.apply_receipt(
        receipt.reference, delivered=receipt.status == "delivered", error=receipt.error
    )
    metrics.RECEIPTS.labels(outcome).inc()
    if outcome == "unknown":
        raise Problem(404, "Không tìm thấy tin nhắn (unknown message)", receipt.reference)
    return ReceiptAnswer(outcome=outcome)


class DeliveryView(BaseModel):
    notification_id: str
    source_event_id: str
    channel: str
    status: str
    template: str
    address: str  # masked
    attempts: int
    last_error: str | None = None
    fallback_of: str | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    final_at: datetime | None = None


class InboxMessageView(BaseModel):
    notification_id: str
    title: str
    body: str
    created_at: datetime


async def _authorised(messages: CitizenMessages, staff: CurrentStaff, code: str) -> None:
    try:
        unit = await messages.unit_of(code)
    except UnknownDossier:
        raise Problem(404, "Không tìm thấy hồ sơ (unknown dossier)", code) from None
    ensure_same_unit(staff, unit, service="notification", action="read_deliveries")


STAFF_PROBLEMS = problems(
    401, 403, 404, 422, notes={403: "The dossier is of another unit", 404: "Unknown dossier"}
)


@router.get(
    "/dossiers/{dossier_code}/deliveries",
    response_model=list[DeliveryView],
    responses=STAFF_PROBLEMS,
)
async def dossier_deliveries(
    dossier_code: DossierCode, messages: Messages, staff: CurrentStaff
) -> list[DeliveryView]:
    """Every delivery of a dossier's messages, oldest first (contact details masked)."""
    await _authorised(messages, staff, dossier_code)
    return [
        DeliveryView(
            notification_id=d["_id"],
            source_event_id=d["source_event_id"],
            channel=d["channel"],
            status=d["status"],
            template=d["template"],
            address=mask(d.get("address")),
            attempts=d.get("attempts", 0),
            last_error=d.get("last_error"),
            fallback_of=d.get("fallback_of"),
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            sent_at=d.get("sent_at"),
            final_at=d.get("final_at"),
        )
        for d in await messages.deliveries(dossier_code)
    ]


@router.get(
    "/dossiers/{dossier_code}/inbox",
    response_model=list[InboxMessageView],
    responses=STAFF_PROBLEMS,
)
async def dossier_inbox(
    dossier_code: DossierCode, messages: Messages, staff: CurrentStaff
) -> list[InboxMessageView]:
    """The portal inbox messages of a dossier, oldest first."""
    await _authorised(messages, staff, dossier_code)
    return [
        InboxMessageView(
            notification_id=m["_id"], title=m["title"], body=m["body"], created_at=m["created_at"]
        )
        for m in await messages.inbox(dossier_code)
    ]

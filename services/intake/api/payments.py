"""Level-4 payments through the payment-provider port, its signed callback, and the result
document delivered online."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.intake.api.dependencies import CitizenDossier, Intake
from services.intake.domain.attachments import safe_file_name
from shared.http import content_disposition

router = APIRouter(prefix="/api/v1", tags=["payments"])


class PaymentStarted(BaseModel):
    transaction_id: str
    amount_vnd: int
    payment_url: str


@router.post("/dossiers/{code}/payments", status_code=201, response_model=PaymentStarted)
async def start_payment(dossier: CitizenDossier, intake: Intake) -> PaymentStarted:
    """Pay the fee online (level 4, when the unit has asked for payment)."""
    transaction_id, amount, payment_url = await intake.payments.start(dossier)
    return PaymentStarted(transaction_id=transaction_id, amount_vnd=amount, payment_url=payment_url)


@router.post("/payments/callback", include_in_schema=True)
async def payment_callback(
    request: Request,
    intake: Intake,
    x_signature: Annotated[str, Header()],
    x_timestamp: Annotated[int, Header()],
) -> dict[str, Any]:
    """The provider's signed notice of a payment's outcome (HMAC with the callback key).

    Answered as soon as the callback is verified and recorded (one write): the dossier is marked
    paid and `dvc.dossier.paid.v1` queued after the answer, so the provider never waits for it."""
    return await intake.payments.receive_callback(await request.body(), x_signature, x_timestamp)


@router.get("/dossiers/{code}/result", tags=["tracking"])
async def download_result(dossier: CitizenDossier, intake: Intake) -> Response:
    """The result document, online, for level-4 dossiers once the unit has issued it."""
    document, data = await intake.dossiers.result(dossier)
    return Response(
        data,
        media_type=document.content_type,
        headers={"Content-Disposition": content_disposition(safe_file_name(document.file_name))},
    )

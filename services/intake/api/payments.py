"""Level-4 payments through the payment-provider port, its signed callback, and the result
document delivered online."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.intake.api.dependencies import CitizenDossier, Intake, citizen_problems
from services.intake.domain.attachments import safe_file_name
from services.intake.domain.payments import PaymentCallback
from shared.runtime.http import content_disposition, inline_schema, problems

router = APIRouter(prefix="/api/v1", tags=["payments"], responses=problems(503))


class PaymentStarted(BaseModel):
    transaction_id: str
    amount_vnd: int
    payment_url: str


@router.post(
    "/dossiers/{code}/payments",
    status_code=201,
    response_model=PaymentStarted,
    responses=citizen_problems(
        409,
        503,
        notes={
            409: "The procedure has no online payment, no payment was requested, there is "
            "nothing to pay, or the dossier changed meanwhile",
            503: "Or the payment provider does not answer",
        },
    ),
)
async def start_payment(dossier: CitizenDossier, intake: Intake) -> PaymentStarted:
    """Pay the fee online (level 4, when the unit has asked for payment)."""
    transaction_id, amount, payment_url = await intake.payments.start(dossier)
    return PaymentStarted(transaction_id=transaction_id, amount_vnd=amount, payment_url=payment_url)


@router.post(
    "/payments/callback",
    responses=problems(
        401,
        404,
        409,
        413,
        422,
        notes={
            401: "The signature, the timestamp or the body is refused",
            404: "No such transaction",
            409: "The transaction was settled already",
            422: "Or the amount is not the transaction's",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(PaymentCallback)}},
        }
    },
)
async def payment_callback(
    request: Request,
    intake: Intake,
    x_signature: Annotated[str, Header(description="HMAC-SHA256 of the body (hex)")],
    x_timestamp: Annotated[int, Header(description="Unix time of the notice (seconds)")],
) -> dict[str, Any]:
    """The provider's signed notice of a payment's outcome (HMAC with the callback key).

    Answered as soon as the callback is verified and recorded (one write): the dossier is marked
    paid and `dvc.dossier.paid.v1` queued after the answer, so the provider never waits for it."""
    return await intake.payments.receive_callback(await request.body(), x_signature, x_timestamp)


@router.get(
    "/dossiers/{code}/result",
    tags=["tracking"],
    response_class=Response,
    responses={
        200: {
            "description": "The document's bytes, with its type and file name",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **citizen_problems(
            409,
            notes={
                404: "No dossier with this code and secret, or no result yet",
                409: "The result is handed over at the counter",
            },
        ),
    },
)
async def download_result(dossier: CitizenDossier, intake: Intake) -> Response:
    """The result document, online, for level-4 dossiers once the unit has issued it."""
    document, data = await intake.dossiers.result(dossier)
    return Response(
        data,
        media_type=document.content_type,
        headers={"Content-Disposition": content_disposition(safe_file_name(document.file_name))},
    )

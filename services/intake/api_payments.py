"""Level-4 payments through the payment-provider port, its signed callback, and the result
document delivered online."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.intake.api_dossiers import CitizenDossier
from services.intake.domain.attachments import safe_file_name
from services.intake.domain.payments import (
    CallbackRejected,
    PaymentCallback,
    PaymentRequest,
    callback_id,
    verify_callback,
)
from services.intake.metrics import CITIZEN_ACTIONS, PAYMENT_CALLBACKS
from services.intake.runtime import IntakeRuntime, Runtime
from services.intake.submission import now, rejected
from shared.events import DossierState
from shared.http import Problem, content_disposition

router = APIRouter(prefix="/api/v1", tags=["payments"])


class PaymentStarted(BaseModel):
    transaction_id: str
    amount_vnd: int
    payment_url: str


@router.post("/dossiers/{code}/payments", status_code=201, response_model=PaymentStarted)
async def start_payment(dossier: CitizenDossier, runtime: Runtime) -> PaymentStarted:
    """Pay the fee online (level 4, when the unit has asked for payment)."""
    status = dossier["status"]
    if dossier["level"] != 4:
        raise Problem(
            409,
            "Thủ tục không hỗ trợ thanh toán trực tuyến (no online payment)",
            "Level-3 procedures are paid at the counter.",
        )
    if status["state"] != DossierState.PAYMENT_REQUESTED:
        raise Problem(
            409,
            "Chưa có yêu cầu thanh toán (no payment requested)",
            "The unit has not asked for the fee yet.",
        )
    amount = int(status.get("amount_vnd") or dossier["fee_vnd"])
    if amount <= 0:
        raise Problem(409, "Không có khoản phí (nothing to pay)", "This dossier has no fee.")
    transaction_id = uuid.uuid4().hex
    payment_request = PaymentRequest(
        transaction_id=transaction_id,
        dossier_code=dossier["_id"],
        procedure_code=dossier["procedure_code"],
        amount_vnd=amount,
        description=f"Phí, lệ phí hồ sơ {dossier['_id']}",
        payer_name=dossier["applicant"]["name"],
        return_url=f"{runtime.settings.public_base_url.rstrip('/')}/api/v1/dossiers/{dossier['_id']}",
        created_at=now(),
    )
    await runtime.store.create_payment(
        {
            "_id": transaction_id,
            "dossier_code": dossier["_id"],
            "amount_vnd": amount,
            "status": "pending",
            "created_at": payment_request.created_at,
        }
    )
    try:
        payment_url = await runtime.payment_provider.create_payment(payment_request)
    except Exception:
        raise Problem(
            503,
            "Cổng thanh toán tạm thời không phản hồi (payment provider unavailable)",
            "Please try again in a few minutes.",
            headers={"Retry-After": "60"},
        ) from None
    CITIZEN_ACTIONS.labels("payment").inc()
    return PaymentStarted(transaction_id=transaction_id, amount_vnd=amount, payment_url=payment_url)


@router.post("/payments/callback", include_in_schema=True)
async def payment_callback(
    request: Request,
    runtime: Runtime,
    x_signature: Annotated[str, Header()],
    x_timestamp: Annotated[int, Header()],
) -> dict[str, Any]:
    """The provider's signed notice of a payment's outcome (HMAC with the callback key).

    Answered as soon as the callback is verified and recorded (one write): the dossier is marked
    paid and `dvc.dossier.paid.v1` queued after the answer, so the provider never waits for it."""
    body = await request.body()
    try:
        callback = verify_callback(
            body,
            x_signature,
            x_timestamp,
            runtime.settings.payment_callback_key.encode(),
            now=int(time.time()),
        )
    except CallbackRejected as rejection:
        PAYMENT_CALLBACKS.labels("rejected").inc()
        raise rejected(
            "payment-callback-rejected",
            401,
            "Chữ ký không hợp lệ (callback rejected)",
            str(rejection),
        ) from None
    succeeded = callback.status == "success"
    recorded = {
        "status": "callback_received" if succeeded else "failed",
        "callback": {
            "id": callback_id(callback),
            "status": callback.status,
            "amount_vnd": callback.amount_vnd,
            "paid_at": callback.paid_at,
            "provider_reference": callback.provider_reference,
            "received_at": now(),
        },
    }
    # A success is recorded only for the amount asked; a failure needs no more work.
    conditions: dict[str, Any] = {"dossier_code": callback.dossier_code}
    if succeeded:
        conditions["amount_vnd"] = callback.amount_vnd
    if not await runtime.store.record_callback(
        callback.transaction_id, conditions, recorded, pending=succeeded
    ):
        raise await _refusal(runtime, callback)
    if not succeeded:
        PAYMENT_CALLBACKS.labels("failed").inc()
        return {"transaction_id": callback.transaction_id, "status": "failed"}
    runtime.payments.schedule(callback.transaction_id)
    return {"transaction_id": callback.transaction_id, "status": "received"}


async def _refusal(runtime: IntakeRuntime, callback: PaymentCallback) -> Problem:
    """Why a verified callback matched no pending payment (read only on this unhappy path)."""
    payment = await runtime.store.get_payment(callback.transaction_id)
    if payment is None or payment["dossier_code"] != callback.dossier_code:
        PAYMENT_CALLBACKS.labels("rejected").inc()
        return rejected(
            "payment-callback-rejected",
            404,
            "Giao dịch không tồn tại (unknown transaction)",
            "No such transaction for this dossier.",
        )
    if payment["status"] != "pending":
        PAYMENT_CALLBACKS.labels("replayed").inc()
        return Problem(
            409,
            "Giao dịch đã được xử lý (transaction already settled)",
            "This callback was already received.",
        )
    PAYMENT_CALLBACKS.labels("rejected").inc()
    return rejected(
        "payment-callback-rejected",
        422,
        "Số tiền không khớp (amount mismatch)",
        f"Expected {payment['amount_vnd']} VND, got {callback.amount_vnd}.",
    )


@router.get("/dossiers/{code}/result", tags=["tracking"])
async def download_result(dossier: CitizenDossier, runtime: Runtime) -> Response:
    """The result document, online, for level-4 dossiers once the unit has issued it."""
    result = dossier["status"].get("result_document")
    if dossier["level"] != 4:
        raise Problem(
            409,
            "Kết quả được trả tại bộ phận một cửa (result at the counter)",
            "Level-3 results are returned at the counter or by post.",
        )
    if result is None:
        raise Problem(404, "Chưa có kết quả (no result yet)", "The unit has not issued the result.")
    data = await runtime.result_documents.fetch(result["storage_id"])
    return Response(
        data,
        media_type=result["content_type"],
        headers={"Content-Disposition": content_disposition(safe_file_name(result["file_name"]))},
    )

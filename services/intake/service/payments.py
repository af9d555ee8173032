"""Level-4 payments: starting one with the payment provider, and taking the provider's signed
callback (recorded in one write and answered at once; `PaymentSettler` completes it)."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

from services.intake.adapters.store import IntakeStore
from services.intake.domain.dossier import Dossier
from services.intake.domain.errors import (
    AmountMismatch,
    CallbackSignatureRejected,
    PaymentProviderUnavailable,
    TransactionSettled,
    UnknownTransaction,
)
from services.intake.domain.payments import (
    CallbackRejected,
    PaymentCallback,
    PaymentRequest,
    callback_id,
    verify_callback,
)
from services.intake.domain.ports import PaymentProvider
from services.intake.metrics import CITIZEN_ACTIONS, PAYMENT_CALLBACKS
from services.intake.service.dossiers import now
from services.intake.service.settlement import PaymentSettler
from services.intake.settings import IntakeSettings


class Payments:
    def __init__(
        self,
        settings: IntakeSettings,
        store: IntakeStore,
        provider: PaymentProvider,
        settlement: PaymentSettler,
    ) -> None:
        self.settings = settings
        self.store = store
        self.provider = provider
        self.settlement = settlement

    async def start(self, dossier: Dossier) -> tuple[str, int, str]:
        """Register a payment of the fee the unit asked for; returns (transaction id, amount,
        the URL where the citizen pays)."""
        amount = dossier.amount_to_pay()
        transaction_id = uuid.uuid4().hex
        base = self.settings.public_base_url.rstrip("/")
        request = PaymentRequest(
            transaction_id=transaction_id,
            dossier_code=dossier.code,
            procedure_code=dossier.procedure_code,
            amount_vnd=amount,
            description=f"Phí, lệ phí hồ sơ {dossier.code}",
            payer_name=dossier.applicant["name"],
            return_url=self._return_url(dossier.code, base),
            created_at=now(),
        )
        await self.store.create_payment(
            {
                "_id": transaction_id,
                "dossier_code": dossier.code,
                "amount_vnd": amount,
                "status": "pending",
                "created_at": request.created_at,
            }
        )
        try:
            payment_url = await self.provider.create_payment(request)
        except Exception:
            raise PaymentProviderUnavailable("Please try again in a few minutes.") from None
        CITIZEN_ACTIONS.labels("payment").inc()
        return transaction_id, amount, payment_url

    def _return_url(self, code: str, base: str) -> str:
        template = self.settings.payment_return_url
        if template:
            return template.replace("{code}", quote(code, safe=""))
        return f"{base}/api/v1/dossiers/{code}"

    async def receive_callback(self, body: bytes, signature: str, timestamp: int) -> dict[str, Any]:
        """Verify and record the provider's callback in one write; the dossier is marked paid
        and `dvc.dossier.paid.v1` queued after the answer, so the provider never waits for it."""
        try:
            callback = verify_callback(
                body,
                signature,
                timestamp,
                self.settings.payment_callback_key.encode(),
                now=int(time.time()),
            )
        except CallbackRejected as rejection:
            PAYMENT_CALLBACKS.labels("rejected").inc()
            raise CallbackSignatureRejected(str(rejection)) from None
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
        if not await self.store.record_callback(
            callback.transaction_id, conditions, recorded, pending=succeeded
        ):
            raise await self._refusal(callback)
        if not succeeded:
            PAYMENT_CALLBACKS.labels("failed").inc()
            return {"transaction_id": callback.transaction_id, "status": "failed"}
        self.settlement.schedule(callback.transaction_id)
        return {"transaction_id": callback.transaction_id, "status": "received"}

    async def _refusal(
        self, callback: PaymentCallback
    ) -> UnknownTransaction | TransactionSettled | AmountMismatch:
        """Why a verified callback matched no pending payment (read only on this unhappy path)."""
        payment = await self.store.get_payment(callback.transaction_id)
        if payment is None or payment["dossier_code"] != callback.dossier_code:
            PAYMENT_CALLBACKS.labels("rejected").inc()
            return UnknownTransaction("No such transaction for this dossier.")
        if payment["status"] != "pending":
            PAYMENT_CALLBACKS.labels("replayed").inc()
            return TransactionSettled("This callback was already received.")
        PAYMENT_CALLBACKS.labels("rejected").inc()
        return AmountMismatch(f"Expected {payment['amount_vnd']} VND, got {callback.amount_vnd}.")

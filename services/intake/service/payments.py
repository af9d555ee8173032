"""Level-4 payments: starting one with the payment provider, and taking the provider's signed
callback (recorded in one write and answered at once; `PaymentSettler` completes it).

The amount is the one the unit asked for (`Dossier.amount_to_pay`). One payment request has at
most one open transaction: the transactions of a request are `<request key>-<attempt>`, and while
the last one is pending, starting again answers that same transaction (idempotent); a new attempt
starts only once the last one failed or never reached the provider. A successful callback must be
for the transaction's amount (the amount asked), else it is refused (422): kept on the payment in
`amount_mismatches`, counted (`dvc_payment_callbacks_total{outcome="amount_mismatch"}`) and
logged; the dossier is not marked paid and no `dvc.dossier.paid.v1` is published.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from services.intake.adapters.store import IntakeStore
from services.intake.domain.dossier import Dossier
from services.intake.domain.errors import (
    AlreadyPaid,
    AmountMismatch,
    CallbackSignatureRejected,
    PaymentBeingCreated,
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

log = logging.getLogger(__name__)

# A pending transaction without a payment URL after this long never reached the provider (the
# process stopped in between): it is abandoned and the next start makes a new attempt.
STALE_CREATION = timedelta(minutes=2)
PAID = ("callback_received", "settled")


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
        """Register a payment of the amount the unit asked for; returns (transaction id, amount,
        the URL where the citizen pays). While a transaction of the same request is open, that
        one is answered again."""
        amount = dossier.amount_to_pay()
        request_key = dossier.payment_request_key()
        latest = await self.store.latest_payment(dossier.code, request_key)
        if latest is not None:
            open_transaction = await self._open_transaction(latest)
            if open_transaction is not None:
                return open_transaction
        attempt = 1 if latest is None else int(latest.get("attempt", 0)) + 1
        transaction_id = f"{request_key}-{attempt}"
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
        created = await self.store.create_payment(
            {
                "_id": transaction_id,
                "dossier_code": dossier.code,
                "request": request_key,
                "attempt": attempt,
                "amount_vnd": amount,
                "status": "pending",
                "created_at": request.created_at,
            }
        )
        if not created:  # a concurrent start of the same attempt won
            raced = await self.store.get_payment(transaction_id)
            open_transaction = None if raced is None else await self._open_transaction(raced)
            if open_transaction is None:
                raise PaymentBeingCreated("The payment is being registered; retry in a moment.")
            return open_transaction
        try:
            payment_url = await self.provider.create_payment(request)
        except Exception:
            await self.store.abandon_payment(transaction_id, "provider_unavailable")
            raise PaymentProviderUnavailable("Please try again in a few minutes.") from None
        await self.store.set_payment_url(transaction_id, payment_url)
        CITIZEN_ACTIONS.labels("payment").inc()
        return transaction_id, amount, payment_url

    async def _open_transaction(self, payment: dict[str, Any]) -> tuple[str, int, str] | None:
        """(id, amount, URL) of `payment` if it is still open; None when a new attempt may
        start; `AlreadyPaid` when it was paid, `PaymentBeingCreated` while it is being
        registered."""
        if payment["status"] in PAID:
            raise AlreadyPaid("The payment the unit asked for has been made.")
        if payment["status"] != "pending":
            return None  # failed, refused, or never reached the provider
        url = payment.get("payment_url")
        if url is not None:
            return payment["_id"], int(payment["amount_vnd"]), str(url)
        created_at = payment["created_at"]
        if created_at.tzinfo is None:  # as read back from storage
            created_at = created_at.replace(tzinfo=now().tzinfo)
        if now() - created_at > STALE_CREATION and await self.store.abandon_payment(
            payment["_id"], "abandoned"
        ):
            return None
        raise PaymentBeingCreated("The payment is being registered; retry in a moment.")

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
            "callback": self._callback_fields(callback),
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

    @staticmethod
    def _callback_fields(callback: PaymentCallback) -> dict[str, Any]:
        return {
            "id": callback_id(callback),
            "status": callback.status,
            "amount_vnd": callback.amount_vnd,
            "paid_at": callback.paid_at,
            "provider_reference": callback.provider_reference,
            "received_at": now(),
        }

    async def _refusal(
        self, callback: PaymentCallback
    ) -> UnknownTransaction | TransactionSettled | AmountMismatch:
        """Why a verified callback matched no pending payment (read only on this unhappy path)."""
        payment = await self.store.get_payment(callback.transaction_id)
        if payment is None or payment["dossier_code"] != callback.dossier_code:
            PAYMENT_CALLBACKS.labels("rejected").inc()
            return UnknownTransaction("No such transaction for this dossier.")
        if payment["status"] != "pending" or payment["amount_vnd"] == callback.amount_vnd:
            PAYMENT_CALLBACKS.labels("replayed").inc()
            return TransactionSettled("This callback was already received.")
        # Not the amount the unit asked: refused and kept on the payment (for the unit to settle
        # with the applicant); the dossier is not marked paid, no event is published, and the
        # transaction stays open for the callback of the right amount.
        expected = f"Expected {payment['amount_vnd']} VND, got {callback.amount_vnd}."
        await self.store.record_amount_mismatch(
            callback.transaction_id, self._callback_fields(callback)
        )
        PAYMENT_CALLBACKS.labels("amount_mismatch").inc()
        log.warning(
            "payment callback of transaction %s for %s refused: %s",
            callback.transaction_id,
            callback.dossier_code,
            expected,
        )
        return AmountMismatch(expected)

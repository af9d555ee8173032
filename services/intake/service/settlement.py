"""Completing payment callbacks after the provider has had its answer.

The callback endpoint only verifies the signature and records the callback on the payment in one
conditional single-document write (`IntakeStore.record_callback`), then answers. What follows —
the dossier marked paid with its `DossierPaid` event in its outbox, then the payment settled — is
done here, by background workers: the endpoint hands them the transaction, and a recovery pass at
start-up and every `payment_recovery_seconds` hands them any callback recorded but not completed
(a crash between the answer and the completion loses nothing).

Completion is idempotent, so this process and other replicas may meet on one payment: the dossier
update is applied once per transaction (`IntakeStore.mark_paid`), and the payment is settled only
while it is still flagged `callback_pending`.
"""

from __future__ import annotations

import logging
from typing import Any

from services.intake.adapters.store import Document, IntakeStore
from services.intake.metrics import PAYMENT_CALLBACKS
from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierPaid
from shared.runtime.outbox import OutboxRelay
from shared.runtime.work_pool import WorkPool

log = logging.getLogger(__name__)


class PaymentSettler:
    """Completes recorded callbacks on a few workers (`shared.runtime.work_pool`): the endpoint
    submits a
    transaction id; the pool's poller is the recovery pass. A transaction is never completed by
    two workers of this process at once."""

    def __init__(
        self,
        store: IntakeStore,
        relay: OutboxRelay,
        *,
        topic: str,
        source: str,
        provider: str,
        recovery_interval: float,
        workers: int = 4,
        batch_size: int = 500,
    ) -> None:
        self.store = store
        self.relay = relay
        self.topic = topic
        self.source = source
        self.provider = provider
        self.batch_size = batch_size
        self.pool = WorkPool(
            "payment-settlement",
            process=self.settle,
            poll=self.recover,
            workers=workers,
            poll_interval=recovery_interval,
        )

    def schedule(self, transaction_id: str) -> None:
        """Complete a just-recorded callback in the background (the caller answers at once)."""
        self.pool.submit(transaction_id)

    async def settle(self, transaction_id: str) -> bool:
        """Complete the recorded callback of one payment; False if there is none left to do."""
        payment = await self.store.pending_callback(transaction_id)
        return payment is not None and await self._complete(payment)

    async def recover(self) -> int:
        """The recovery pass: hand every recorded but unfinished callback to the workers;
        returns how many were found. One indexed query when there is nothing to do."""
        unfinished = await self.store.pending_callbacks(self.batch_size)
        for payment in unfinished:
            self.pool.submit(payment["_id"])
        if unfinished:
            log.info("%d recorded payment callbacks to complete", len(unfinished))
        return len(unfinished)

    def start(self) -> None:
        """Workers, and the recovery pass now and every `recovery_interval` seconds."""
        self.pool.start()

    async def stop(self) -> None:
        """Let running completions finish; the others stay recorded for the next start."""
        await self.pool.stop()

    async def _complete(self, payment: Document) -> bool:
        callback: dict[str, Any] = payment["callback"]
        event = DossierPaid(
            dossier_code=payment["dossier_code"],
            occurred_at=callback["paid_at"],
            transaction_id=payment["_id"],
            amount_vnd=callback["amount_vnd"],
            provider=self.provider,
        )
        # The dossier first, once per transaction: if we stop before settling the payment, the
        # next pass finds the dossier done and only settles.
        await self.store.mark_paid(
            payment["dossier_code"], payment["_id"], [(self.topic, wrap(event, self.source))]
        )
        self.relay.poke(payment["dossier_code"])
        settled = await self.store.finish_callback(
            payment["_id"],
            {
                "status": "settled",
                "paid_at": callback["paid_at"],
                "provider_reference": callback["provider_reference"],
            },
        )
        if settled:
            PAYMENT_CALLBACKS.labels("settled").inc()
        return settled

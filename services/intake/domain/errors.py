"""Why intake refuses a request: one exception per reason, raised by the domain rules and the
service layer, answered as RFC 9457 problems by `services.intake.api.problems`.

Each error carries a `detail` (English, for the reader of the problem), optional
`extensions` (machine-readable fields added to the problem body) and optional `headers` (added
to the answer, e.g. a `Retry-After` that depends on the moment).
"""

from __future__ import annotations

from typing import Any


class IntakeError(Exception):
    """Base of every refusal intake answers with a problem."""

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


# --- Submissions and supplements -----------------------------------------------------------------


class UnknownProcedure(IntakeError):
    """The submission names no procedure of the catalogue."""


class NotOfferedOnline(IntakeError):
    """An online submission for a procedure below level 3."""


class UnexpectedDocument(IntakeError):
    """A file for a document the procedure does not ask for."""


class MissingDocument(IntakeError):
    """A mandatory (or requested) document is absent."""


class NoFiles(MissingDocument):
    """A supplement without any file."""


class InvalidAttachment(IntakeError):
    """A file of the wrong type, too large, or otherwise unacceptable; `code` is the
    `AttachmentError` code (`too_large`, `wrong_type`...)."""

    def __init__(self, code: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.code = code


class InvalidDossier(IntakeError):
    """The dossier data cannot be accepted (schema, JSON, or a value the database cannot hold)."""


class IdempotencyKeyReused(IntakeError):
    """The Idempotency-Key was used before with a different request."""


class RequestInProgress(IntakeError):
    """A request with the same Idempotency-Key is still being processed."""


class DailyNumbersExhausted(IntakeError):
    """Every dossier number of the day is used: the code's sequence has four digits (Circular
    01/2018 art. 19), 9,999 dossiers a day for the agency. Numbering resumes at midnight in Viet
    Nam; nothing of the refused request is kept."""

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


# --- Dossiers recorded at the counter ------------------------------------------------------------


class OtherUnitsDossier(IntakeError):
    """A counter officer recording a dossier of a procedure another unit receives."""


class FutureReceipt(IntakeError):
    """A counter dossier's receipt time in the future."""


class BackdatedReceipt(IntakeError):
    """A counter dossier's receipt time further back than the configured window."""


# --- Access ---------------------------------------------------------------------------------------


class DossierNotFound(IntakeError):
    """No dossier with this code (and, for citizens, this secret)."""


class ProcedureNotFound(IntakeError):
    """No procedure with this code."""


# --- Citizen actions that the dossier's state does not allow ------------------------------------


class DossierStateConflict(IntakeError):
    """The action is not possible in the dossier's current state."""


class CannotWithdraw(DossierStateConflict):
    pass


class NoSupplementRequested(DossierStateConflict):
    pass


class DossierChanged(DossierStateConflict):
    """The dossier changed between reading it and writing the action (retry after reloading)."""


class NoOnlinePayment(DossierStateConflict):
    """Level-3 procedures are paid at the counter."""


class NoPaymentRequested(DossierStateConflict):
    pass


class NothingToPay(DossierStateConflict):
    pass


class AlreadyPaid(NothingToPay):
    """The payment the unit asked for was made already (answered as "nothing to pay")."""


class PaymentBeingCreated(RequestInProgress):
    """A concurrent request is registering the payment of the same request with the provider."""


class ResultAtCounter(DossierStateConflict):
    """Level-3 results are returned at the counter or by post."""


class NoResultYet(IntakeError):
    pass


class CannotRate(DossierStateConflict):
    """A rating is taken once per dossier, once it is finished."""


class NotFinished(CannotRate):
    pass


class AlreadyRated(CannotRate):
    pass


# --- Payments -------------------------------------------------------------------------------------


class PaymentProviderUnavailable(IntakeError):
    """The payment provider could not create the payment; the citizen may retry later."""


class PaymentCallbackRefused(IntakeError):
    """A callback that is not acted on: forged, stale, malformed, for an unknown transaction or
    for the wrong amount."""


class CallbackSignatureRejected(PaymentCallbackRefused):
    pass


class UnknownTransaction(PaymentCallbackRefused):
    pass


class AmountMismatch(PaymentCallbackRefused):
    pass


class TransactionSettled(IntakeError):
    """The callback of a transaction already settled (a replay)."""

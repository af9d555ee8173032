"""The submission use case: validate everything, store the files, issue the code, persist the
dossier with its `DossierSubmitted` event in one write, and answer with the receipt.

Nothing is half-stored: every check runs before anything is written; files are stored before the
code is drawn (so a storage failure leaves no gap in the daily sequence) and removed again if the
dossier itself cannot be written.

A code is drawn only for a dossier that will be stored: the form, the files, the procedure and the
Idempotency-Key are checked first, and the complete dossier is built with a stand-in number and
encoded for the database before the real number is drawn. Only an infrastructure failure of the
final insert can still leave a number unused.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.intake.adapters.store import (
    Document,
    IdempotencyClaim,
    IdempotencyConflict,
    IntakeStore,
    NewAttachment,
    Outgoing,
)
from services.intake.domain.attachments import CONTENT_TYPES, safe_file_name
from services.intake.domain.counter import check_receipt_time, check_recording_unit
from services.intake.domain.dossier import Dossier
from services.intake.domain.dossier_code import (
    MAX_DAILY_SEQUENCE,
    format_code,
    seconds_to_next_day,
    sequence_key,
)
from services.intake.domain.errors import (
    DailyNumbersExhausted,
    IdempotencyKeyReused,
    InvalidDossier,
    RequestInProgress,
    UnknownProcedure,
)
from services.intake.domain.submission import (
    CheckedDocument,
    CounterSubmissionForm,
    DocumentReceipt,
    SubmissionForm,
    SubmissionReceipt,
    UploadedFile,
    check_channel,
    check_documents,
)
from services.intake.metrics import SUBMISSIONS
from services.intake.settings import IntakeSettings
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import Applicant, Channel, Contact, DocumentRef, DossierSubmitted
from shared.contracts.topics import DOSSIER_SUBMITTED_TOPIC
from shared.runtime.auth import Staff
from shared.runtime.outbox import OutboxRelay

log = logging.getLogger(__name__)


class Submissions:
    """Online submissions and dossiers recorded at the counter."""

    def __init__(
        self, settings: IntakeSettings, store: IntakeStore, relay: OutboxRelay, *, source: str
    ) -> None:
        self.settings = settings
        self.store = store
        self.relay = relay
        self.source = source

    async def submit(
        self,
        form: SubmissionForm,
        files: Sequence[UploadedFile],
        *,
        channel: Channel,
        received_at: datetime,
        idempotency: tuple[str, str] | None,
        officer: Staff | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Returns (status code, receipt body). `idempotency` is (key, request fingerprint);
        `officer`: who records a counter dossier (only for their own unit)."""
        procedure = await self.store.cached_procedure(form.procedure_code)
        if procedure is None:
            raise UnknownProcedure(f"No procedure {form.procedure_code!r} in the catalogue.")
        if officer is not None:
            check_recording_unit(officer, procedure)
        check_channel(procedure, channel)
        documents = check_documents(procedure, files, self.settings.max_file_bytes)

        claim: IdempotencyClaim | None = None
        if idempotency is not None:
            key, request_fingerprint = idempotency
            # This request's claim on its key: its answer is kept under this token.
            claim = IdempotencyClaim(key, reservation=secrets.token_hex(16))
            try:
                previous = await self.store.reserve_idempotency_key(
                    key, request_fingerprint, reservation=claim.reservation
                )
            except IdempotencyConflict as conflict:
                raise _idempotency_error(conflict.reason) from None
            if previous is not None:
                return previous.status_code, previous.body
        try:
            return await self._persist(procedure, form, documents, channel, received_at, claim)
        except BaseException:
            if claim is not None:
                await self.store.release_idempotency_key(claim.key, claim.reservation)
            raise

    async def record_at_counter(
        self,
        form: CounterSubmissionForm,
        files: Sequence[UploadedFile],
        *,
        officer: Staff,
        now: datetime,
        idempotency: tuple[str, str] | None,
    ) -> tuple[int, dict[str, Any]]:
        """A dossier handed in at the counter or received by post, recorded by `officer`: for
        their own unit only, received no later than `now` and within the backdating window."""
        received_at = form.received_at or now
        check_receipt_time(received_at, now, self.settings.counter_backdate_days)
        return await self.submit(
            form,
            files,
            channel=form.channel,
            received_at=received_at,
            idempotency=idempotency,
            officer=officer,
        )

    async def _persist(
        self,
        procedure: Procedure,
        form: SubmissionForm,
        documents: Sequence[CheckedDocument],
        channel: Channel,
        received_at: datetime,
        claim: IdempotencyClaim | None,
    ) -> tuple[int, dict[str, Any]]:
        """Store the files and the dossier; with an Idempotency-Key's `claim`, the answer to
        replay is written with the dossier, so that a stored dossier always has it."""
        store, settings = self.store, self.settings
        refs: list[DocumentRef] = []
        try:
            refs = await store_documents(store, documents)
            secret = secrets.token_urlsafe(18)
            sequence_day = sequence_key(settings.agency_id, received_at)

            def build(sequence: int) -> tuple[Dossier, list[Outgoing]]:
                if sequence > MAX_DAILY_SEQUENCE:
                    log.error("dossier numbers of %s used up: submission refused", sequence_day)
                    raise DailyNumbersExhausted(
                        f"All {MAX_DAILY_SEQUENCE:,} dossier numbers of the day are used; "
                        "submissions resume at midnight (Asia/Ho_Chi_Minh).",
                        retry_after_seconds=seconds_to_next_day(datetime.now(UTC)),
                    )
                code = format_code(settings.agency_id, received_at, sequence)
                dossier = Dossier.submitted(
                    code=code,
                    procedure=procedure,
                    applicant=form.applicant.model_dump(mode="json"),
                    contact=form.contact.model_dump(mode="json"),
                    form=form.form,
                    documents=refs,
                    channel=channel,
                    received_at=received_at,
                    tracking_secret=secret,
                )
                event = self._announcement(dossier, form)
                return dossier, [(settings.topic(DOSSIER_SUBMITTED_TOPIC), event)]

            def receipt(dossier: Dossier) -> dict[str, Any]:
                return self._receipt(dossier, secret, documents).model_dump(mode="json")

            def answer(dossier: Dossier) -> Document:
                assert claim is not None
                return claim.answer(201, receipt(dossier))

            # The number is the only part that is not known yet: build the dossier with a
            # stand-in and prove it can be stored, so that nothing a client sent fails after the
            # draw.
            try:
                store.check_storable(*build(MAX_DAILY_SEQUENCE))
            except ValueError as error:  # `Unstorable`, or an event the contract refuses
                raise InvalidDossier(f"The dossier cannot be stored: {error}") from None
            dossier = await store.insert_with_next_code(
                sequence_day, build, handover=self.relay, answer=answer if claim else None
            )
        except BaseException:
            await store.delete_attachments(r.storage_id for r in refs)
            raise
        SUBMISSIONS.labels(procedure.unit_code, str(procedure.level), str(int(channel))).inc()
        return 201, receipt(dossier)

    def _announcement(self, dossier: Dossier, form: SubmissionForm) -> CloudEvent:
        event = DossierSubmitted(
            dossier_code=dossier.code,
            occurred_at=dossier.submitted_at,
            procedure_code=dossier.procedure_code,
            unit_code=dossier.unit_code,
            level=dossier.level,
            channel=Channel(dossier.channel),
            applicant=Applicant(
                kind=form.applicant.kind,
                name=form.applicant.name,
                identifier=form.applicant.identifier,
            ),
            contact=Contact(email=form.contact.email, phone=form.contact.phone),
            documents=dossier.documents,
            form=dossier.form,
            fee_vnd=dossier.fee_vnd,
        )
        return wrap(event, self.source)

    def _receipt(
        self, dossier: Dossier, secret: str, documents: Sequence[CheckedDocument]
    ) -> SubmissionReceipt:
        base = self.settings.public_base_url.rstrip("/")
        code = dossier.code
        return SubmissionReceipt(
            dossier_code=code,
            tracking_secret=secret,
            tracking_url=f"{base}/api/v1/dossiers/{code}?secret={secret}",
            receipt_url=f"{base}/api/v1/dossiers/{code}/receipt?secret={secret}",
            receipt_html_url=f"{base}/api/v1/dossiers/{code}/receipt.html?secret={secret}",
            state=dossier.state,
            channel=dossier.channel,
            submitted_at=dossier.submitted_at,
            procedure_code=dossier.procedure_code,
            procedure_name=dossier.procedure_name,
            unit_code=dossier.unit_code,
            documents=[
                DocumentReceipt(
                    document_type=d.required.code,
                    name=d.required.name,
                    file_name=safe_file_name(d.upload.file_name),
                    size_bytes=len(d.upload.data),
                )
                for d in documents
            ],
            fee_vnd=dossier.fee_vnd,
        )


async def store_documents(
    store: IntakeStore, documents: Sequence[CheckedDocument]
) -> list[DocumentRef]:
    """Store checked files (all in two database writes)."""
    files = [
        NewAttachment(
            data=checked.upload.data,
            file_name=safe_file_name(checked.upload.file_name),
            content_type=CONTENT_TYPES.get(checked.file_format, "application/octet-stream"),
            metadata={"document_type": checked.upload.document_type},
        )
        for checked in documents
    ]
    storage_ids = await store.store_attachments(files)
    return [
        DocumentRef(
            document_type=file.metadata["document_type"],
            file_name=file.file_name,
            content_type=file.content_type,
            size_bytes=len(file.data),
            storage_id=storage_id,
            sha256=hashlib.sha256(file.data).hexdigest(),
        )
        for file, storage_id in zip(files, storage_ids, strict=True)
    ]


def _idempotency_error(reason: str) -> IdempotencyKeyReused | RequestInProgress:
    if reason == "mismatch":
        return IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request; use a new key."
        )
    return RequestInProgress(
        "A request with this Idempotency-Key is still being processed; retry shortly."
    )

"""What citizens (and counter officers) do with a dossier once it is submitted: open it with its
code and secret, read the receipt, ask to withdraw it, send a supplement, download the result."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bson import ObjectId

from services.intake.adapters.store import Document, IntakeStore
from services.intake.domain.dossier import Dossier, Rating, secret_opens
from services.intake.domain.errors import AlreadyRated, DossierChanged, DossierNotFound
from services.intake.domain.ports import ResultDocuments
from services.intake.domain.receipt import ReceiptData, processing_time_text
from services.intake.domain.submission import UploadedFile, check_documents
from services.intake.metrics import CITIZEN_ACTIONS
from services.intake.service.submission import store_documents
from services.intake.settings import IntakeSettings
from shared.contracts.cloudevents import wrap
from shared.contracts.events import (
    Channel,
    DocumentRef,
    DossierRated,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.contracts.topics import (
    DOSSIER_RATED_TOPIC,
    DOSSIER_SUPPLEMENTED_TOPIC,
    DOSSIER_WITHDRAWN_TOPIC,
)
from shared.runtime.auth import Staff, ensure_same_unit
from shared.runtime.outbox import OutboxRelay


def now() -> datetime:
    return datetime.now(UTC)


class DossierActions:
    """The use cases on one submitted dossier."""

    def __init__(
        self,
        settings: IntakeSettings,
        store: IntakeStore,
        relay: OutboxRelay,
        result_documents: ResultDocuments,
        *,
        source: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.relay = relay
        self.result_documents = result_documents
        self.source = source

    async def open(self, code: str, secret: str | None) -> Dossier:
        """The dossier, if `secret` is its tracking secret; `DossierNotFound` otherwise, for an
        unknown code exactly as for a wrong secret (codes cannot be enumerated)."""
        dossier = await self.store.get_dossier(code)
        opened = secret_opens(dossier, secret)  # the same comparison for an unknown code
        if dossier is None or not opened:
            raise DossierNotFound(
                "No dossier with this code and secret. Check both on your receipt."
            )
        return dossier

    async def record_for_staff(self, code: str) -> Document:
        """The full stored record (without the secret's hash), for counter officers."""
        record = await self.store.dossier_record(code)
        if record is None:
            raise DossierNotFound(f"No dossier {code}.")
        record.pop("tracking_secret_sha256", None)
        return record

    async def for_staff(self, staff: Staff, code: str) -> Dossier:
        """The dossier as submitted (applicant, contact, form, documents), for staff of its
        unit (officers, unit heads, counter officers; administrators of any unit)."""
        dossier = await self.store.get_dossier(code)
        if dossier is None:
            raise DossierNotFound(f"No dossier {code}.")
        ensure_same_unit(staff, dossier.unit_code, service="intake", action="read_dossier")
        return dossier

    async def document_for_staff(
        self, staff: Staff, code: str, storage_id: str
    ) -> tuple[DocumentRef, bytes]:
        """One of the dossier's documents (as submitted or supplemented) and its bytes, for
        staff of its unit; `DossierNotFound` when the dossier has no such document."""
        dossier = await self.for_staff(staff, code)
        document = next((d for d in dossier.documents if d.storage_id == storage_id), None)
        if document is None or not ObjectId.is_valid(storage_id):
            raise DossierNotFound(f"No document {storage_id} in dossier {code}.")
        stream = await self.store.attachments.open_download_stream(ObjectId(storage_id))
        return document, await stream.read()

    async def receipt(self, dossier: Dossier, secret: str) -> ReceiptData:
        """The receipt (Form 01 content); the tracking link carries `secret`."""
        base = self.settings.public_base_url.rstrip("/")
        procedure = await self.store.get_procedure(dossier.procedure_code)
        names = {d.code: d.name for d in procedure.documents} if procedure else {}
        return ReceiptData(
            dossier_code=dossier.code,
            procedure_code=dossier.procedure_code,
            procedure_name=dossier.procedure_name,
            unit_name=dossier.unit_name,
            applicant_name=dossier.applicant["name"],
            applicant_identifier_masked=dossier.masked_applicant_identifier,
            channel=Channel(dossier.channel),
            submitted_at=dossier.submitted_at,
            appointment_at=dossier.status.due_at,
            documents=[
                (names.get(d.document_type, d.document_type), d.file_name)
                for d in dossier.documents
            ],
            fee_vnd=dossier.fee_vnd,
            tracking_url=f"{base}/api/v1/dossiers/{dossier.code}?secret={secret}",
            agency_name=self.settings.agency_name,
            processing_time_text=processing_time_text(
                procedure.processing_time if procedure else None
            ),
        )

    async def request_withdrawal(self, dossier: Dossier, reason: str | None) -> None:
        """Ask to withdraw the dossier; an officer of the unit confirms it."""
        dossier.check_withdrawable()
        event = DossierWithdrawn(dossier_code=dossier.code, occurred_at=now(), reason=reason)
        topic = self.settings.topic(DOSSIER_WITHDRAWN_TOPIC)
        if not await self.store.request_withdrawal(
            dossier.code, dossier.state, [(topic, wrap(event, self.source))]
        ):
            raise DossierChanged("Reload and try again.")
        self.relay.poke(dossier.code)
        CITIZEN_ACTIONS.labels("withdrawal").inc()

    async def rate(self, dossier: Dossier, score: int, comment: str | None) -> Rating:
        """Keep the applicant's rating of a finished dossier (once) and announce it."""
        dossier.check_ratable()
        comment = (comment or "").strip() or None
        rating = Rating(score=score, comment=comment, at=now())
        event = DossierRated(
            dossier_code=dossier.code,
            occurred_at=rating.at,
            procedure_code=dossier.procedure_code,
            unit_code=dossier.unit_code,
            score=score,
            comment=comment,
        )
        topic = self.settings.topic(DOSSIER_RATED_TOPIC)
        if not await self.store.add_rating(
            dossier.code, rating, [(topic, wrap(event, self.source))]
        ):
            current = await self.store.get_dossier(dossier.code)
            if current is not None and current.rating is not None:
                raise AlreadyRated("This dossier has been rated already.")
            raise DossierChanged("Reload and try again.")
        self.relay.poke(dossier.code)
        CITIZEN_ACTIONS.labels("rating").inc()
        return rating

    async def supplement(
        self, dossier: Dossier, files: Sequence[UploadedFile], note: str | None
    ) -> list[DocumentRef]:
        """Check and store the documents a supplement request asked for, and announce them."""
        dossier.check_supplement_open()
        procedure = await self.store.get_procedure(dossier.procedure_code)
        assert procedure is not None
        checked = check_documents(
            dossier.supplement_procedure(procedure), files, self.settings.max_file_bytes
        )
        refs = await store_documents(self.store, checked)
        event = DossierSupplemented(
            dossier_code=dossier.code, occurred_at=now(), documents=refs, note=note
        )
        topic = self.settings.topic(DOSSIER_SUPPLEMENTED_TOPIC)
        if not await self.store.add_supplement(
            dossier.code, refs, [(topic, wrap(event, self.source))]
        ):
            await self.store.delete_attachments(r.storage_id for r in refs)
            raise DossierChanged("Reload and try again.")
        self.relay.poke(dossier.code)
        CITIZEN_ACTIONS.labels("supplement").inc()
        return refs

    async def result(self, dossier: Dossier) -> tuple[DocumentRef, bytes]:
        """The result document of a level-4 dossier once issued, and its bytes from processing."""
        document = dossier.result_online()
        return document, await self.result_documents.fetch(document.storage_id)

"""The result documents an officer issues (4 → 9) and that intake and officers fetch back.

The bytes are kept in processing's own store (`adapters/results.py`); their reference travels in
the `issue_result` event so intake can deliver the result online (level 4). An issue is checked
before the bytes are stored, so that a refused action leaves no orphan file, and the bytes are
deleted again when the action fails after all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.processing.adapters.results import ResultStore
from services.processing.domain.authorisation import VIEW
from services.processing.domain.errors import CaseNotFound, ResultNotFound
from services.processing.domain.lifecycle import Action, allowed_actions
from services.processing.service.cases import ActResult, ProcessingService
from services.processing.settings import ProcessingSettings
from shared.contracts.events import DocumentRef
from shared.runtime.auth import Role, Staff

DEFAULT_FILE_NAME = "ket-qua"


@dataclass(frozen=True)
class ResultUpload:
    """An uploaded result document, as the officer sent it (already checked for type and size)."""

    file_name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ResultFile:
    file_name: str
    content_type: str
    data: bytes


@dataclass
class ResultDocuments:
    settings: ProcessingSettings
    cases: ProcessingService
    results: ResultStore

    @property
    def max_bytes(self) -> int:
        return self.settings.max_result_bytes

    @property
    def content_types(self) -> list[str]:
        return self.settings.result_content_types

    async def issue(
        self,
        staff: Staff,
        code: str,
        upload: ResultUpload,
        *,
        note: str | None,
        document_type: str,
        idempotency_key: str | None = None,
    ) -> ActResult:
        """Issue the result: store the document, then apply `issue_result` with its reference.

        What is refused (or replayed) goes through `act` without a document, for the same answer
        as any other action."""
        action = Action.ISSUE_RESULT
        stored = await self.cases.store.load(code)
        if stored is None:
            raise CaseNotFound(code)
        self.cases.authorise(staff, stored.case.unit_code, action.value)
        request_key = self.cases.request_key(staff, action, idempotency_key)
        replay = request_key is not None and request_key in stored.request_keys
        allowed = action in allowed_actions(stored.case.state) and stored.case.approved
        if replay or not allowed:
            return await self.cases.act(staff, code, action, idempotency_key, note=note)
        storage_id = await self.results.upload(
            upload.file_name,
            upload.data,
            {
                "dossier_code": code,
                "content_type": upload.content_type,
                "uploaded_by": staff.subject,
            },
        )
        reference = DocumentRef(
            document_type=document_type,
            file_name=upload.file_name,
            content_type=upload.content_type,
            size_bytes=len(upload.data),
            storage_id=storage_id,
            sha256=hashlib.sha256(upload.data).hexdigest(),
        )
        try:
            return await self.cases.act(
                staff, code, action, idempotency_key, note=note, result_document=reference
            )
        except BaseException:
            await self.results.delete(storage_id)  # the action failed: keep no orphan
            raise

    async def download(self, staff: Staff, storage_id: str) -> ResultFile:
        """The bytes of an issued result, for officers of the case's unit and for intake (its
        service token with the `result_reader` role: services never read each other's
        database)."""
        found = await self.results.find(storage_id)
        if found is None:
            raise ResultNotFound(storage_id)
        stored = await self.cases.store.load(found.metadata.get("dossier_code", ""))
        if stored is None:
            raise ResultNotFound(storage_id)
        if not staff.has_role(Role.result_reader):  # intake delivers any unit's result
            self.cases.authorise(staff, stored.case.unit_code, VIEW)
        data = await self.results.read(storage_id)
        return ResultFile(
            file_name=found.file_name or DEFAULT_FILE_NAME,
            content_type=found.metadata.get("content_type", "application/octet-stream"),
            data=data,
        )

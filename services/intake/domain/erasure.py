"""Erasing a finished dossier's personal data once its retention period is over (pure).

Decree 13/2023 (DOMAIN §7): storage limitation. A dossier is *finished* when it was not received
(3), stopped — refused after appraisal or withdrawn — (8), or its result returned (10); its
*finish date* is when intake applied that step (`finished_at`). Past the retention period the
applicant's name, ID or tax code and contact details, the form, the attached files, the inbox
messages and the rating's comment are erased; what the Ministry must keep to account for its
work stays: the code, procedure, unit, channel, level, dates, states and history, the fee, the
result reference, the kinds and sizes of the documents handed in, and the rating's score.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.contracts.events import DossierState

FINISHED_STATES = frozenset(
    {DossierState.NOT_RECEIVED, DossierState.STOPPED, DossierState.RESULT_RETURNED}
)
ERASED_NAME = "(đã xóa dữ liệu cá nhân)"


def is_finished(state: int) -> bool:
    return state in FINISHED_STATES


def retention_cutoff(now: datetime, older_than_days: int) -> datetime:
    """Dossiers finished before this instant are past their retention period."""
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
    return now - timedelta(days=older_than_days)


def anonymised_fields(dossier: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The fields that replace a stored dossier's personal data (a `$set`)."""
    applicant = dossier.get("applicant") or {}
    documents = [
        {
            "document_type": d.get("document_type", ""),
            "file_name": "",
            "content_type": d.get("content_type", ""),
            "size_bytes": d.get("size_bytes", 0),
            "storage_id": "",
            "sha256": None,
        }
        for d in dossier.get("documents") or []
    ]
    fields: dict[str, Any] = {
        "applicant": {
            "kind": applicant.get("kind", "person"),
            "name": ERASED_NAME,
            "identifier": "",
        },
        "contact": {},
        "form": {},
        "documents": documents,
        "inbox": [],
        "personal_data_erased_at": now,
    }
    if dossier.get("rating"):
        fields["rating.comment"] = None
    return fields


def stored_files(dossier: dict[str, Any]) -> list[str]:
    """The attachment ids of a stored dossier's documents (to delete with its personal data)."""
    return [d["storage_id"] for d in dossier.get("documents") or [] if d.get("storage_id")]

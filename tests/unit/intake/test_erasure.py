"""Which dossiers are finished, and what erasing their personal data replaces (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain.dossier import processing_step
from services.intake.domain.erasure import (
    ERASED_NAME,
    anonymised_fields,
    is_finished,
    retention_cutoff,
    stored_files,
)
from shared.contracts.events import DossierState, StepAction
from tests.factories import dossier_code, processed

NOW = datetime(2026, 12, 5, tzinfo=UTC)
STORED = {
    "_id": dossier_code(1),
    "applicant": {"kind": "organisation", "name": "Công ty A", "identifier": "0100101079"},
    "contact": {"phone": "0912345678", "email": "a@example.vn"},
    "form": {"dia_chi": "12 Trần Hưng Đạo"},
    "documents": [
        {
            "document_type": "to_khai",
            "file_name": "Tờ khai Công ty A.pdf",
            "content_type": "application/pdf",
            "size_bytes": 1200,
            "storage_id": "65f000000000000000000001",
            "sha256": "ab" * 32,
        }
    ],
    "inbox": [{"at": NOW, "title": "Hồ sơ", "body": "Kính gửi Công ty A"}],
    "rating": {"score": 4, "comment": "Gọi 0912345678", "at": NOW},
}


@pytest.mark.parametrize("state", list(DossierState))
def test_finished_means_not_received_stopped_or_returned(state: DossierState) -> None:
    assert is_finished(state) == (state in (3, 8, 10))


def test_nothing_personal_is_left_and_the_accounts_stay() -> None:
    fields = anonymised_fields(STORED, NOW)
    text = json.dumps(fields, default=str, ensure_ascii=False)
    for value in ("Công ty A", "0100101079", "0912345678", "a@example.vn", "Trần Hưng Đạo"):
        assert value not in text
    assert fields["applicant"] == {"kind": "organisation", "name": ERASED_NAME, "identifier": ""}
    assert fields["documents"][0]["document_type"] == "to_khai"
    assert fields["documents"][0]["size_bytes"] == 1200
    assert fields["rating.comment"] is None and "rating.score" not in fields
    assert fields["personal_data_erased_at"] == NOW


def test_the_files_to_delete_are_the_documents_stored() -> None:
    assert stored_files(STORED) == ["65f000000000000000000001"]
    assert stored_files({"documents": [{"storage_id": ""}]}) == []


def test_the_cutoff_is_the_period_before_now() -> None:
    assert retention_cutoff(NOW, 730) == NOW - timedelta(days=730)
    with pytest.raises(ValueError):
        retention_cutoff(NOW, -1)


@pytest.mark.parametrize(
    ("state", "action", "finishes"),
    [
        (DossierState.RESULT_RETURNED, StepAction.RETURN_RESULT, True),
        (DossierState.STOPPED, StepAction.CONFIRM_WITHDRAWAL, True),
        (DossierState.NOT_RECEIVED, StepAction.REFUSE_INTAKE, True),
        (DossierState.PROCESSED, StepAction.ISSUE_RESULT, False),
        (DossierState.IN_PROCESSING, StepAction.OVERDUE, False),
    ],
)
def test_a_finishing_step_starts_the_retention(state, action, finishes) -> None:
    step = processing_step(processed(dossier_code(1), state, action))
    assert step is not None and step.finishes is finishes

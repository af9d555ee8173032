"""Valid sample events for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DossierProcessed,
    DossierState,
    DossierSubmitted,
    StepAction,
)


def dossier_code(sequence: int = 1, day: str = "261129") -> str:
    return f"000.00.21.G12-{day}-{sequence:04d}"


def submitted(code: str | None = None) -> DossierSubmitted:
    return DossierSubmitted(
        dossier_code=code or dossier_code(),
        occurred_at=datetime(2026, 11, 29, 9, 30, tzinfo=UTC),
        procedure_code="1.004473",
        unit_code="G12",
        level=4,
        channel=Channel.ONLINE,
        applicant=Applicant(
            kind=ApplicantKind.PERSON, name="Nguyễn Văn A", identifier="001203004567"
        ),
        contact=Contact(email="a@example.vn", phone="0912345678"),
        fee_vnd=300_000,
    )


def processed(
    code: str, state: DossierState, action: StepAction | str, **fields: Any
) -> DossierProcessed:
    return DossierProcessed(
        dossier_code=code,
        occurred_at=fields.pop("occurred_at", datetime.now(UTC)),
        procedure_code="1.004473",
        unit_code="G12",
        action=StepAction(action),
        state=state,
        actor="officer-1",
        **fields,
    )

"""The public dossier-status projection carries no personal data."""

from datetime import UTC, datetime

from services.notification.webhooks.domain.projection import project
from shared.contracts.events import DossierState, PublicDossierStatus
from tests.factories import processed, submitted


def test_a_submission_projects_to_its_state_and_channel_only() -> None:
    public = project(submitted())
    assert isinstance(public, PublicDossierStatus)
    assert (public.state, public.channel, public.action) == (DossierState.SUBMITTED, 2, "submit")
    payload = public.model_dump_json()
    for personal in ("001203004567", "Nguyễn Văn A", "a@example.vn", "0912345678"):
        assert personal not in payload


def test_a_step_projects_its_state_and_due_date() -> None:
    step = processed("000.00.21.G12-261129-0001", DossierState.IN_PROCESSING, "receive")
    step = step.model_copy(update={"due_at": datetime(2026, 12, 8, 16, 59, tzinfo=UTC)})
    public = project(step)
    assert public.state == DossierState.IN_PROCESSING and public.due_at == step.due_at


def test_the_public_contract_has_no_field_for_personal_data() -> None:
    assert not {"applicant", "contact", "documents", "form"} & set(PublicDossierStatus.model_fields)

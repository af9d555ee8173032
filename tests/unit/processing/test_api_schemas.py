"""The officer API's response models show every field of the case they answer (OpenAPI)."""

from __future__ import annotations

from services.processing.api.schemas import INTERNAL_CASE_FIELDS, CaseDetail, WorklistItem
from services.processing.domain.case import Case, CaseSummary


def test_the_case_detail_has_every_field_of_the_case_but_the_internal_ones() -> None:
    shown = set(Case.model_fields) - INTERNAL_CASE_FIELDS
    assert set(CaseDetail.model_fields) == shown | {"overdue", "allowed_actions"}


def test_a_worklist_item_has_every_field_of_the_summary_but_the_sort_keys() -> None:
    shown = set(CaseSummary.model_fields) - {"online_rank", "due_sort"}
    assert set(WorklistItem.model_fields) == shown | {"online", "overdue"}

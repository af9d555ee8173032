"""The form of a submission must be storable before a dossier number is drawn for it."""

import re
from typing import Any

import pytest

from services.intake.api.dossiers import parse_form_json
from services.intake.domain.form_data import MAX_DEPTH, check_form_data
from services.intake.domain.submission import SubmissionForm
from shared.runtime.http import Problem


def nested(depth: int) -> dict[str, Any]:
    form: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        form = {"level": form}
    return form


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"ten_nhan_hieu": "Sao Mai", "so_nhom": 3, "phi": 1.5, "uu_tien": None, "co": True},
        {"bang": [{"stt": 1, "ten": "Hàng hóa"}, {"stt": 2, "ten": "Dịch vụ"}]},
        {"so_lon": 2**63 - 1, "so_am": -(2**63), "rong": "", "mang_rong": [], "doi_tuong": {}},
        nested(MAX_DEPTH),
    ],
)
def test_storable_forms_pass_unchanged(form: dict[str, Any]) -> None:
    assert check_form_data(form) is form


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"so_tien": 2**63}, "64 bits at form.so_tien"),
        ({"bang": [{"so": -(2**63) - 1}]}, "form.bang[0].so"),
        ({"ten.nhan": 1}, "invalid field name"),
        ({"$where": 1}, "invalid field name"),
        ({"": 1}, "invalid field name"),
        ({"a": {"b\x00": 1}}, "invalid field name in form.a"),
        ({"x": float("nan")}, "non-finite"),
        ({"x": [float("inf")]}, "non-finite"),
        ({"x": "\ud800"}, "invalid text at form.x"),
        ({"x": {"y": "có \x00 ở giữa"}}, "invalid text at form.x.y"),
        ({"bang": [["a", "b"], ["c", "d"]]}, "array inside an array at form.bang[0]"),
        ({"bang": [{"o": [1, []]}]}, "array inside an array at form.bang[0].o[1]"),
        (nested(MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
    ],
)
def test_what_the_database_cannot_store_is_refused_with_its_path(
    form: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_form_data(form)


def test_the_submission_problem_points_at_the_form() -> None:
    raw = (
        '{"procedure_code": "1.004940", "applicant": {"kind": "person", "name": "Lan", '
        '"identifier": "001303004567"}, "contact": {"phone": "0912345678"}, '
        '"form": {"so_tien": 99999999999999999999}}'
    )
    with pytest.raises(Problem) as refused:
        parse_form_json(raw, SubmissionForm)
    [error] = refused.value.extensions["errors"]
    assert error["location"] == ["dossier", "form"] and "so_tien" in error["message"]

"""The shipped procedure catalogue, accent-insensitive search and the level roll-up."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.intake.adapters.shipped_catalogue import load_catalogue
from services.intake.domain.catalogue import (
    LARGE_VOLUME_PER_YEAR,
    CatalogueDataError,
    Unit,
    UpgradeReason,
    fold,
    matches,
    parse_procedures,
    query_terms,
    rollup,
    search_text,
    search_tokens,
)
from shared.contracts.catalogue import Procedure, TimeUnit, level4_target_met

REAL_DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "most_procedures.csv"


@pytest.fixture(scope="module")
def catalogue() -> tuple[list[Unit], list[Procedure]]:
    return load_catalogue()


@pytest.fixture(scope="module")
def procedures(catalogue: tuple[list[Unit], list[Procedure]]) -> list[Procedure]:
    return catalogue[1]


def make(code: str, level: int, **fields: Any) -> Procedure:
    defaults: dict[str, Any] = {
        "name": f"Thủ tục {code}",
        "unit_code": "A",
        "unit_name": "Đơn vị A",
        "field": "Lĩnh vực",
    }
    return Procedure(code=code, level=level, **(defaults | fields))


# ── the shipped data ─────────────────────────────────────────────────────────────────────────────
def test_the_decision_s_15_units_and_316_procedures_load(catalogue) -> None:
    units, procedures = catalogue
    assert len(units) == 15
    assert len({unit.code for unit in units}) == 15
    assert len(procedures) == 316
    assert len({procedure.code for procedure in procedures}) == 316
    assert {procedure.unit_code for procedure in procedures} == {unit.code for unit in units}


def test_48_real_rows_and_268_flagged_illustrative_ones(procedures) -> None:
    real = [p for p in procedures if not p.illustrative]
    illustrative = [p for p in procedures if p.illustrative]
    assert (len(real), len(illustrative)) == (48, 268)
    assert all(p.source and "illustrative" in p.source for p in illustrative)
    assert all(p.source and "illustrative" not in p.source for p in real)


def test_illustrative_codes_are_national_style(procedures) -> None:
    national = re.compile(r"^[12]\.\d{6}$")
    assert all(national.match(p.code) for p in procedures if p.illustrative)


def test_every_procedure_lists_2_to_6_documents_with_formats(procedures) -> None:
    allowed = {"pdf", "jpg", "png", "docx"}
    for procedure in procedures:
        assert 2 <= len(procedure.documents) <= 6, procedure.code
        assert any(document.mandatory for document in procedure.documents), procedure.code
        assert all(set(d.formats) <= allowed and d.formats for d in procedure.documents)


def test_radiation_licences_count_from_the_fee_and_are_specialised_inspection(
    procedures,
) -> None:
    licences = [p for p in procedures if "giấy phép tiến hành công việc bức xạ" in p.name.lower()]
    assert len(licences) >= 10
    assert all(p.fee_starts_clock and p.specialised_inspection for p in licences)


@pytest.mark.skipif(not REAL_DATA.exists(), reason=f"reference data absent: {REAL_DATA}")
def test_every_real_row_is_present_as_it_is(procedures) -> None:
    with REAL_DATA.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    real = [p for p in procedures if not p.illustrative]
    assert Counter((r["name_vi"], r["unit_vi"]) for r in rows) == Counter(
        (p.name, p.unit_name) for p in real
    )
    by_code = {p.code: p for p in procedures}
    plain_units = {"ngày": TimeUnit.CALENDAR_DAYS, "ngày làm việc": TimeUnit.WORKING_DAYS}
    plain_units |= {"tháng": TimeUnit.MONTHS}
    for row in rows:
        if row["code"]:
            procedure = by_code[row["code"]]
            assert (procedure.name, procedure.unit_name) == (row["name_vi"], row["unit_vi"])
        else:
            (procedure,) = [
                p
                for p in real
                if (p.name, p.unit_name) == (row["name_vi"], row["unit_vi"])
                and p.code not in {r["code"] for r in rows}
            ]
        assert procedure.field == row["field_vi"]
        assert procedure.source and row["source"] in procedure.source
        if row["level"]:
            assert procedure.level == int(row["level"])
        else:
            # a filled level is said to be filled
            assert "level" in procedure.source.split("not from the source:")[1]
        if row["time_value"].isdigit() and row["time_unit"] in plain_units:
            assert procedure.processing_time is not None
            assert procedure.processing_time.value == int(row["time_value"])
            assert procedure.processing_time.unit == plain_units[row["time_unit"]]
        if row["fee_vnd"].startswith("0 "):
            assert procedure.total_fee_vnd == 0


# ── fold and search ──────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Chuyển giao công nghệ", "chuyen giao cong nghe"),
        ("ĐĂNG KÝ NHÃN HIỆU", "dang ky nhan hieu"),
        ("đo lường, Đo Lường", "do luong, do luong"),
        ("  an   toàn\tbức\nxạ  ", "an toan buc xa"),
        ("Ðo lường", "do luong"),  # U+00D0, a look-alike of Đ found in pasted text
        ("ỨNG DỤNG năng lượng nguyên tử", "ung dung nang luong nguyen tu"),
        ("1.004531", "1.004531"),
    ],
)
def test_fold_drops_case_tones_and_d_stroke_and_spaces(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_fold_is_the_same_for_composed_and_decomposed_input() -> None:
    text = "Thủ tục cấp giấy phép tiến hành công việc bức xạ"
    assert fold(unicodedata.normalize("NFD", text)) == fold(unicodedata.normalize("NFC", text))


def test_unaccented_query_finds_the_technology_transfer_procedures(procedures) -> None:
    found = {p.code for p in procedures if matches(p, "chuyen giao cong nghe")}
    named = {p.code for p in procedures if "chuyển giao công nghệ" in p.name.lower()}
    assert len(named) >= 8
    assert named <= found
    assert found == {p.code for p in procedures if matches(p, "CHUYỂN GIAO  Công Nghệ")}
    assert found == {p.code for p in procedures if matches(p, "cong nghe chuyen giao")}
    assert not any(matches(p, "chuyen giao cong nghe") for p in procedures if "nhãn" in p.name)


def test_search_finds_by_code_and_by_unit(procedures) -> None:
    assert [p.code for p in procedures if matches(p, "1.004531")] == ["1.004531"]
    radiation = {p.code for p in procedures if p.unit_code == "ATBXHN"}
    assert {p.code for p in procedures if matches(p, "an toan buc xa hat nhan")} >= radiation


def test_every_query_word_must_appear() -> None:
    procedure = make("1.000001", 3, name="Thủ tục đăng ký nhãn hiệu", field="Sở hữu trí tuệ")
    assert matches(procedure, "nhan hieu")
    assert matches(procedure, "")
    assert not matches(procedure, "nhan hieu sang che")
    assert "nhan" in search_tokens(procedure) and "1.000001" in search_tokens(procedure)
    assert search_text(procedure).startswith("1.000001 thu tuc dang ky nhan hieu")


def test_query_terms_drop_punctuation() -> None:
    assert query_terms("Chuyển giao, công nghệ (X-quang)") == [
        "chuyen",
        "giao",
        "cong",
        "nghe",
        "x-quang",
    ]


# ── roll-up ──────────────────────────────────────────────────────────────────────────────────────
def test_rollup_arithmetic_on_a_small_catalogue() -> None:
    procedures = [
        make("1.000001", 4, workflow_group="nhan_hieu"),
        make("1.000002", 3, workflow_group="nhan_hieu", annual_volume=100),
        make("1.000003", 3, annual_volume=800),
        make("1.000004", 3, annual_volume=10),
        make("1.000005", 2, unit_code="B", unit_name="Đơn vị B"),
        make("1.000006", 3, unit_code="B", unit_name="Đơn vị B", specialised_inspection=True),
        make("1.000007", 1, unit_code="B", unit_name="Đơn vị B"),
    ]
    units = [
        Unit(code="B", name_vi="Đơn vị B", name_en="Unit B"),
        Unit(code="A", name_vi="Đơn vị A", name_en="Unit A"),
        Unit(code="C", name_vi="Đơn vị C", name_en="Unit C"),
    ]
    result = rollup(procedures, volumes={"1.000006": 650}, units=units)

    overall = result.overall
    assert (overall.level_1, overall.level_2, overall.level_3, overall.level_4) == (1, 1, 4, 1)
    assert (overall.total, overall.online) == (7, 5)
    assert (result.level4_numerator, result.level4_denominator) == (1, 5)
    assert result.level4_share == pytest.approx(0.2)
    assert result.target == 0.30 and result.target_met is False

    assert [(u.unit_code, u.total, u.online, u.level_4) for u in result.units] == [
        ("B", 3, 1, 0),
        ("A", 4, 4, 1),
        ("C", 0, 0, 0),
    ]
    assert result.units[1].level4_share == pytest.approx(0.25)
    assert result.units[2].level4_share is None

    candidates = [(c.code, c.volume, c.volume_source, c.reasons) for c in result.candidates]
    assert candidates == [
        ("1.000003", 800, "catalogue", [UpgradeReason.LARGE_VOLUME]),
        (
            "1.000006",
            650,
            "reported",
            [UpgradeReason.LARGE_VOLUME, UpgradeReason.SPECIALISED_INSPECTION],
        ),
        ("1.000002", 100, "catalogue", [UpgradeReason.SHARED_WORKFLOW]),
    ]  # 1.000004: level 3 but small, alone and not inspection-related
    shared = result.candidates[2]
    assert shared.workflow_peers == ["1.000001"] and shared.workflow_has_level4


def test_reported_volumes_override_the_catalogue_and_the_threshold_is_configurable() -> None:
    procedures = [make("1.000001", 3, annual_volume=5_000), make("1.000002", 3)]
    reported = rollup(procedures, volumes={"1.000001": 20, "1.000002": 300})
    assert reported.candidates == []
    lowered = rollup(procedures, volumes={"1.000001": 20}, large_volume_threshold=20)
    assert [(c.code, c.volume_source) for c in lowered.candidates] == [("1.000001", "reported")]
    assert rollup([make("1.000002", 3)]).candidates == []  # unknown volume: not large


def test_target_is_met_at_exactly_30_percent_and_not_without_online_services() -> None:
    ten = [make(f"1.00000{i}", 4 if i < 3 else 3) for i in range(10)]
    assert rollup(ten).target_met is True
    assert rollup(ten[1:]).target_met is False  # 2 of 9
    nothing_online = rollup([make("1.000001", 2)])
    assert nothing_online.level4_share is None and nothing_online.target_met is False


def test_rollup_of_the_shipped_catalogue_is_computed_from_its_levels(catalogue) -> None:
    units, procedures = catalogue
    result = rollup(procedures, units=units)
    level_3 = sum(p.level == 3 for p in procedures)
    level_4 = sum(p.level == 4 for p in procedures)
    assert (result.level4_numerator, result.level4_denominator) == (level_4, level_3 + level_4)
    assert result.level4_share == pytest.approx(level_4 / (level_3 + level_4))
    assert result.target_met == (level_4 / (level_3 + level_4) >= 0.30)
    assert 0.25 < result.level4_share < 0.35 and result.level4_share != pytest.approx(0.30)
    assert [u.unit_code for u in result.units] == [u.code for u in units]
    assert sum(u.total for u in result.units) == 316
    assert sum(u.level_4 for u in result.units) == level_4


def test_every_shipped_candidate_is_level_3_and_its_reasons_hold(procedures) -> None:
    result = rollup(procedures)
    by_code = {p.code: p for p in procedures}
    groups = Counter(p.workflow_group for p in procedures if p.workflow_group)
    assert result.candidates
    volumes = [c.volume for c in result.candidates]
    assert volumes == sorted(volumes, reverse=True)
    for candidate in result.candidates:
        procedure = by_code[candidate.code]
        assert procedure.level == 3 and candidate.reasons
        reasons = set(candidate.reasons)
        large = (procedure.annual_volume or 0) >= LARGE_VOLUME_PER_YEAR
        assert (UpgradeReason.LARGE_VOLUME in reasons) == large
        shared = groups[procedure.workflow_group] > 1 if procedure.workflow_group else False
        assert (UpgradeReason.SHARED_WORKFLOW in reasons) == shared
        inspection = UpgradeReason.SPECIALISED_INSPECTION in reasons
        assert inspection == procedure.specialised_inspection
    listed = {c.code for c in result.candidates}
    assert any(p.level == 3 and p.code not in listed for p in procedures)


# ── bad data ─────────────────────────────────────────────────────────────────────────────────────
def record(code: str, **fields: Any) -> dict[str, Any]:
    base = {"code": code, "name": "Thủ tục X", "unit_code": "A", "unit_name": "A", "field": "F"}
    return base | {"level": 3} | fields


def test_a_bad_row_is_named_in_the_error() -> None:
    with pytest.raises(CatalogueDataError, match=r"procedure 2 \(code '1.000002'\).*level"):
        parse_procedures([record("1.000001"), record("1.000002", level=7)])


def test_duplicate_codes_and_unknown_units_are_refused() -> None:
    with pytest.raises(CatalogueDataError, match=r"procedure 2.*duplicate code.*procedure 1"):
        parse_procedures([record("1.000001"), record("1.000001")])
    units = [Unit(code="A", name_vi="A", name_en="A")]
    with pytest.raises(CatalogueDataError, match="unknown unit_code 'Z'"):
        parse_procedures([record("1.000001", unit_code="Z")], units)


def test_the_level4_target_is_the_same_exact_rule_as_reporting() -> None:
    def share_met(level4: int, level3: int) -> bool:
        procedures = [make(f"4.{i:06d}", 4) for i in range(level4)]
        procedures += [make(f"3.{i:06d}", 3) for i in range(level3)]
        return rollup(procedures).target_met

    assert share_met(3, 7) is True
    assert share_met(299, 701) is False
    assert share_met(77, 186) is False
    assert share_met(2000, 4667) is False  # 29.9985%, which rounds to 30.00%
    for level4, online in ((3, 10), (299, 1000), (77, 263), (2000, 6667), (0, 0)):
        assert level4_target_met(level4, online) is (online > 0 and level4 * 10 >= online * 3)

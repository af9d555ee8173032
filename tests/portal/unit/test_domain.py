"""The portal's pure view logic: labels and formats, pagination, the application form's checks,
intake's refusals mapped to fields, and the tracking timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from stdnum.vn import mst

from services.portal.domain import labels
from services.portal.domain.application import (
    Application,
    ChosenFile,
    check_files,
    field_errors_from_intake,
    validate,
    vietnamese_part,
)
from services.portal.domain.pagination import PageWindow, page_number
from services.portal.domain.tracking import (
    DossierStatus,
    next_step,
    timeline,
    tracking_form_errors,
)
from shared.contracts.catalogue import Fee, Procedure, ProcessingTime, RequiredDocument, TimeUnit


def valid_tax_code() -> str:
    return "010010107" + mst.calc_check_digit("010010107")


def procedure(level: int = 4) -> Procedure:
    return Procedure(
        code="1.004940",
        name="Đăng ký nhãn hiệu",
        unit_code="SHTT",
        unit_name="Cục Sở hữu trí tuệ",
        field="Sở hữu trí tuệ",
        level=level,
        processing_time=ProcessingTime(value=1.5, unit=TimeUnit.MONTHS),
        fees=[Fee(name="Lệ phí", amount_vnd=150000)],
        documents=[
            RequiredDocument(code="to_khai", name="Tờ khai", formats=["pdf", "docx"]),
            RequiredDocument(code="mau", name="Mẫu nhãn", formats=["jpg", "png"]),
            RequiredDocument(code="uy_quyen", name="Giấy ủy quyền", mandatory=False),
        ],
    )


# --- labels --------------------------------------------------------------------------------------


def test_labels_and_formats_are_vietnamese() -> None:
    assert labels.money_text(1500000) == "1.500.000 đồng"
    assert labels.money_text(0) == "Không thu phí"
    assert labels.size_text(10 * 1024 * 1024) == "10 MB"
    assert labels.size_text(1572864) == "1,5 MB"
    assert labels.size_text(2048) == "2 KB"
    assert labels.processing_time_text(ProcessingTime(value=15, unit=TimeUnit.WORKING_DAYS)) == (
        "15 ngày làm việc"
    )
    assert labels.processing_time_text(ProcessingTime(value=1.5, unit=TimeUnit.MONTHS)) == (
        "1,5 tháng"
    )
    assert labels.processing_time_text(None) == "Chưa công bố"
    assert labels.formats_text(["pdf", "jpg", "docx"]) == "PDF, JPEG, Word (DOCX)"
    assert labels.accept_attribute(["pdf", "jpg"]) == ".pdf,.jpg,.jpeg"
    assert labels.level_label(4) == "Mức độ 4"
    assert set(labels.STATE_LABELS) == set(range(1, 11))


def test_dates_are_shown_in_vietnam_time() -> None:
    moment = datetime(2026, 12, 5, 18, 5, tzinfo=UTC)
    assert labels.datetime_text(moment) == "01:05 ngày 06/12/2026"
    assert labels.date_text("2026-12-05T18:05:00+00:00") == "06/12/2026"
    assert labels.date_text("not a date") == ""
    assert labels.datetime_text(None) == ""


def test_only_levels_3_and_4_accept_online_and_others_are_told_where_to_go() -> None:
    assert [labels.accepts_online(level) for level in (1, 2, 3, 4)] == [False, False, True, True]
    guidance = " ".join(labels.in_person_guidance(procedure(level=2)))
    assert "Bộ phận Một cửa của Cục Sở hữu trí tuệ" in guidance
    assert "bưu chính" in guidance


# --- pagination ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 1), ("", 1), ("3", 3), ("0", 1), ("-2", 1), ("x", 1), ("99999", 1000)],
)
def test_page_numbers_from_the_query_string_are_bounded(raw: str | None, expected: int) -> None:
    assert page_number(raw) == expected


def test_page_window_says_which_results_are_shown() -> None:
    second = PageWindow(page=2, size=20, shown=20, has_next=True)
    assert (second.first, second.last, second.summary) == (21, 40, "Kết quả 21–40")
    assert second.has_previous and second.label == "Trang 2"
    last = PageWindow(page=3, size=20, shown=1, has_next=False)
    assert last.summary == "Kết quả 41"
    empty = PageWindow(page=1, size=20, shown=0, has_next=False)
    assert (empty.first, empty.last, empty.summary) == (0, 0, "Không có kết quả")
    assert not empty.has_previous


# --- the application form ------------------------------------------------------------------------


def person(**changes: str) -> Application:
    values = {
        "applicant_kind": "person",
        "applicant_name": "Nguyễn Thị Lan",
        "applicant_identifier": "001303004567",
        "contact_email": "lan@example.vn",
    }
    return Application.from_form(values | changes)


def test_a_complete_application_has_no_errors_and_becomes_intakes_dossier() -> None:
    application = person(applicant_identifier="001 303 004 567", form_request="Xin cấp\n văn bằng")
    assert validate(application) == {}
    dossier = application.to_intake("1.004940")
    assert dossier["applicant"] == {
        "kind": "person",
        "name": "Nguyễn Thị Lan",
        "identifier": "001303004567",
        "address": None,
    }
    assert dossier["contact"] == {"email": "lan@example.vn", "phone": None}
    assert dossier["form"] == {"noi_dung_de_nghi": "Xin cấp\nvăn bằng"}


def test_text_is_normalised_and_unknown_kinds_fall_back_to_person() -> None:
    decomposed = "Nguye\u0302\u0303n"  # as macOS browsers send it
    application = Application.from_form(
        {"applicant_kind": "robot", "applicant_name": f"  {decomposed}\x00  Lan "}
    )
    assert application.applicant_name == "Nguyễn Lan"
    assert application.applicant_kind == "person"


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        ("", "Nhập số căn cước công dân"),
        ("12345", "đúng 12 chữ số (bạn đã nhập 5 chữ số)"),
        ("00130300456A", "chỉ được gồm chữ số"),
    ],
)
def test_an_invalid_citizen_id_is_explained(identifier: str, message: str) -> None:
    errors = validate(person(applicant_identifier=identifier))
    assert message in errors["applicant_identifier"]


def test_an_organisation_needs_a_tax_code_with_the_right_check_digit() -> None:
    good = valid_tax_code()
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    organisation = {"applicant_kind": "organisation", "applicant_name": "Công ty Ánh Dương"}
    assert validate(person(**organisation, applicant_identifier=good)) == {}
    assert validate(person(**organisation, applicant_identifier=good + "001")) == {}
    errors = validate(person(**organisation, applicant_identifier=wrong))
    assert "chữ số kiểm tra" in errors["applicant_identifier"]
    errors = validate(person(**organisation, applicant_identifier="12345"))
    assert "10 chữ số" in errors["applicant_identifier"]
    branch = person(**organisation, applicant_identifier=good + "001").to_intake("x")
    assert branch["applicant"]["identifier"] == f"{good}-001"


def test_contact_needs_email_or_phone_and_both_are_checked() -> None:
    assert "ít nhất email hoặc số điện thoại" in validate(person(contact_email=""))["contact_email"]
    assert validate(person(contact_email="", contact_phone="0912 345 678")) == {}
    assert validate(person(contact_email="", contact_phone="+84912345678")) == {}
    assert "email không hợp lệ" in validate(person(contact_email="lan@"))["contact_email"]
    assert "di động không hợp lệ" in validate(person(contact_phone="0212345678"))["contact_phone"]


def test_name_and_lengths_are_checked() -> None:
    assert "Nhập họ và tên" in validate(person(applicant_name="  "))["applicant_name"]
    assert "300 ký tự" in validate(person(applicant_name="a" * 301))["applicant_name"]
    assert "2000 ký tự" in validate(person(form_request="a" * 2001))["form_request"]


# --- files ---------------------------------------------------------------------------------------


def test_files_missing_of_the_wrong_type_empty_or_too_large_are_named() -> None:
    files = [
        ChosenFile("to_khai", "tờ khai.exe", 10),
        ChosenFile("mau", "mẫu.jpeg", 2_000_000),
        ChosenFile("uy_quyen", "rỗng.pdf", 0),
    ]
    errors = check_files(procedure(), files, max_file_bytes=1_000_000, max_total_bytes=10**8)
    assert "“tờ khai.exe” không đúng định dạng" in errors["document_to_khai"]
    assert "PDF, Word (DOCX)" in errors["document_to_khai"]
    assert "vượt giới hạn 976,6 KB" in errors["document_mau"]
    assert "rỗng" in errors["document_uy_quyen"]
    missing = check_files(procedure(), [], max_file_bytes=10**6, max_total_bytes=10**8)
    assert set(missing) == {"document_to_khai", "document_mau"}  # the optional one may be left


def test_the_dossier_total_is_limited_too() -> None:
    files = [ChosenFile("to_khai", "a.pdf", 600), ChosenFile("mau", "b.png", 600)]
    errors = check_files(procedure(), files, max_file_bytes=1000, max_total_bytes=1000)
    assert "vượt giới hạn" in errors["documents"]
    ok = check_files(procedure(), files, max_file_bytes=1000, max_total_bytes=1200)
    assert ok == {}


# --- intake's refusals ---------------------------------------------------------------------------


def test_intakes_messages_keep_their_vietnamese_part() -> None:
    assert (
        vietnamese_part("Value error, Số CCCD phải gồm 12 chữ số (citizen ID must be 12 digits)")
        == "Số CCCD phải gồm 12 chữ số."
    )
    assert vietnamese_part("Mã tỉnh (cũ) không đúng") == "Mã tỉnh (cũ) không đúng."


def test_intakes_refusals_point_at_the_field() -> None:
    problem = {
        "errors": [
            {
                "location": ["dossier", "applicant", "identifier"],
                "message": "Value error, Mã tỉnh 999 trong số CCCD không tồn tại (unknown code)",
            },
            {"location": ["dossier", "contact"], "message": "Value error, Cần email (need one)"},
        ]
    }
    assert field_errors_from_intake(problem) == {
        "applicant_identifier": "Mã tỉnh 999 trong số CCCD không tồn tại.",
        "contact_email": "Cần email.",
    }
    file_problem = {
        "document_type": "to_khai",
        "detail": "Tệp 'a.pdf' có đuôi .pdf nhưng nội dung không phải PDF (not a PDF)",
    }
    assert field_errors_from_intake(file_problem) == {
        "document_to_khai": "Tệp 'a.pdf' có đuôi .pdf nhưng nội dung không phải PDF."
    }
    assert set(field_errors_from_intake({"missing": ["mau"]})) == {"document_mau"}


# --- tracking ------------------------------------------------------------------------------------


def status(**changes: object) -> DossierStatus:
    values: dict[str, object] = {
        "dossier_code": "000.00.21.G12-261205-0001",
        "procedure_code": "1.004940",
        "procedure_name": "Đăng ký nhãn hiệu",
        "unit_code": "SHTT",
        "submitted_at": "2026-12-05T02:00:00Z",
        "state": 4,
        "due_at": "2026-12-20T10:00:00Z",
        "history": [
            {"at": "2026-12-05T03:00:00Z", "state": 2, "action": "receive"},
            {"at": "2026-12-05T02:00:00Z", "state": 1, "action": "submit"},
            {"at": "2026-12-06T02:00:00Z", "state": 4, "action": "mystery", "note": "Ghi chú"},
        ],
    }
    return DossierStatus.model_validate(values | changes)


def test_the_timeline_is_in_order_with_vietnamese_labels_and_the_current_step_last() -> None:
    steps = timeline(status())
    assert [s.title for s in steps] == ["Nộp hồ sơ", "Tiếp nhận hồ sơ", "Đang xử lý"]
    assert [s.current for s in steps] == [False, False, True]
    assert steps[0].when == "09:00 ngày 05/12/2026"
    assert steps[2].note == "Ghi chú"


def test_what_to_do_now_follows_the_state() -> None:
    assert "đang được xử lý" in next_step(status())
    assert "20/12/2026" in next_step(status())
    supplement = status(state=5, requested_documents=["Bản sao hợp đồng"])
    assert "Bản sao hợp đồng" in next_step(supplement)
    assert next_step(status(citizen_action="Nộp lệ phí 150.000 đồng")) == (
        "Nộp lệ phí 150.000 đồng"
    )
    for state in range(1, 11):
        assert next_step(status(state=state))


def test_the_tracking_form_checks_code_and_secret() -> None:
    assert tracking_form_errors("000.00.21.G12-261205-0001", "abc") == {}
    errors = tracking_form_errors("", "")
    assert set(errors) == {"code", "secret"}
    assert "định dạng" in tracking_form_errors("<script>", "abc")["code"]
    assert "không đúng" in tracking_form_errors("A-1", "x" * 101)["secret"]

"""Messages render in Vietnamese with the event's data; English when Vietnamese is missing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.notification.citizens.adapters.templates import TemplateRenderer
from services.notification.citizens.domain.mapping import MessageKind, template_name

CODE = "000.00.21.G12-261129-0001"


def context(**step: object) -> dict[str, object]:
    return {
        "dossier_code": CODE,
        "procedure_code": "1.004473",
        "applicant_name": "Nguyễn Văn A",
        "submitted_at": datetime(2026, 11, 29, 2, 30, tzinfo=UTC),  # 09:30 in Ha Noi
        "fee_vnd": 300_000,
        "tracking_url": "https://dichvucong.most.gov.vn/tra-cuu-ho-so",
        "due_at": None,
        "note": None,
        "citizen_action": None,
        "requested_documents": [],
        "result_document": None,
        **step,
    }


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def test_receipt_in_vietnamese_names_code_time_and_fee(renderer: TemplateRenderer) -> None:
    message = renderer.render("receipt.v1", context())
    assert message.locale == "vi" and message.template == "receipt.v1"
    assert message.title == f"Biên nhận hồ sơ {CODE}"
    assert "09:30 29/11/2026" in message.body
    assert "300.000 đồng" in message.body
    assert message.email_body.startswith("Kính gửi Nguyễn Văn A,")
    assert "Nguyễn Văn A" not in message.body  # the inbox text is published: no name needed
    assert message.sms.text.startswith(f"DVC BKHCN: Ho so {CODE} da duoc nop luc 09:30")


def test_supplement_lists_every_requested_document(renderer: TemplateRenderer) -> None:
    message = renderer.render(
        "supplement_requested.v1",
        context(
            requested_documents=["Bản sao Giấy chứng nhận đăng ký doanh nghiệp", "Tờ khai"],
            note="Thiếu chữ ký",
        ),
    )
    assert "- Bản sao Giấy chứng nhận đăng ký doanh nghiệp\n- Tờ khai" in message.body
    assert "Lý do: Thiếu chữ ký" in message.body
    assert "Ban sao Giay chung nhan dang ky doanh nghiep; To khai" in message.sms.text


def test_extension_apology_gives_the_new_date_in_vietnam_time(renderer: TemplateRenderer) -> None:
    due = datetime(2026, 12, 14, 17, 30, tzinfo=UTC)  # 00:30 on the 15th in Ha Noi
    message = renderer.render("extension_apology.v1", context(due_at=due, note="Cần thẩm định"))
    assert "xin lỗi" in message.body
    assert "Ngày hẹn trả kết quả mới: 15/12/2026." in message.body
    assert "Hen lai: 15/12/2026" in message.sms.text


def test_every_message_kind_renders_in_both_locales(renderer: TemplateRenderer) -> None:
    step = context(
        due_at=datetime(2026, 12, 1, tzinfo=UTC),
        note="n",
        citizen_action="a",
        requested_documents=["d"],
        result_document="r.pdf",
    )
    for kind in MessageKind:
        for locale in ("vi", "en"):
            message = renderer.render(template_name(kind), step, locale)
            assert message.locale == locale
            assert CODE in message.title and CODE in message.body and CODE in message.sms.text


def test_a_missing_vietnamese_template_falls_back_to_english(tmp_path: Path) -> None:
    (tmp_path / "vi").mkdir()
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "email_layout.v1.j2").write_text("Dear {{ applicant_name }},\n{{ body }}")
    (tmp_path / "en" / "notice.v1.j2").write_text(
        "{% block title %}Notice {{ dossier_code }}{% endblock %}"
        "{% block sms %}SMS {{ dossier_code }}{% endblock %}"
        "{% block body %}Body {{ dossier_code }}{% endblock %}"
    )
    message = TemplateRenderer(tmp_path).render("notice.v1", context(), "vi")
    assert message.locale == "en"
    assert message.title == f"Notice {CODE}"
    assert message.email_body == f"Dear Nguyễn Văn A,\nBody {CODE}"


def test_a_template_using_unknown_data_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "bad.v1.j2").write_text(
        "{% block title %}{{ no_such_field }}{% endblock %}"
        "{% block sms %}x{% endblock %}{% block body %}x{% endblock %}"
    )
    with pytest.raises(Exception, match="no_such_field"):
        TemplateRenderer(tmp_path).render("bad.v1", context())


def test_sms_with_diacritics_when_configured(renderer: TemplateRenderer) -> None:
    message = TemplateRenderer(sms_strip_diacritics=False).render("received.v1", context())
    assert message.sms.encoding == "ucs2"
    assert "đã được tiếp nhận" in message.sms.text

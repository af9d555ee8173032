from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from services.intake.domain.receipt import (
    APPOINTMENT_PENDING,
    ReceiptData,
    format_vnd,
    render_receipt_html,
)
from shared.contracts.events import Channel

TRACKING_URL = "https://dichvucong.most.gov.vn/tra-cuu/000.00.21.G12-260105-0042?s=Xy7_k2"


def receipt(**changes: object) -> ReceiptData:
    values: dict[str, object] = {
        "dossier_code": "000.00.21.G12-260105-0042",
        "procedure_code": "1.005802",
        "procedure_name": "Thủ tục cấp phó bản văn bằng bảo hộ",
        "unit_name": "Cục Sở hữu trí tuệ",
        "applicant_name": "Nguyễn Thị Bình",
        "applicant_identifier_masked": "********2345",
        "channel": Channel.ONLINE,
        "submitted_at": datetime(2026, 1, 5, 1, 30, tzinfo=UTC),  # 08:30 in Ha Noi
        "appointment_at": None,
        "documents": [("Tờ khai", "to-khai.pdf"), ("Bản sao văn bằng", "van-bang.jpg")],
        "fee_vnd": 280000,
        "tracking_url": TRACKING_URL,
        "agency_name": "Bộ Khoa học và Công nghệ",
    }
    return ReceiptData(**(values | changes))


def test_the_page_has_the_motto_the_title_and_the_dossier_code() -> None:
    page = render_receipt_html(receipt())
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="vi">' in page
    assert "Cộng hòa xã hội chủ nghĩa Việt Nam" in page
    assert "Độc lập - Tự do - Hạnh phúc" in page
    assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in page
    assert '<div class="code">Mã hồ sơ: 000.00.21.G12-260105-0042</div>' in page
    assert "size: A4" in page


def test_documents_fee_and_procedure_are_listed() -> None:
    page = render_receipt_html(receipt())
    assert "<td>1</td><td>Tờ khai</td><td>to-khai.pdf</td>" in page
    assert "<td>2</td><td>Bản sao văn bằng</td><td>van-bang.jpg</td>" in page
    assert "280.000 đồng" in page
    assert "Thủ tục cấp phó bản văn bằng bảo hộ (mã thủ tục 1.005802)" in page
    assert "Cục Sở hữu trí tuệ" in page


def test_times_are_shown_in_vietnam() -> None:
    page = render_receipt_html(
        receipt(appointment_at=datetime(2026, 1, 26, 9, 0, tzinfo=timezone(timedelta(hours=7))))
    )
    assert "Thời gian nhận hồ sơ: 05/01/2026 08:30" in page
    assert "Thời gian hẹn trả kết quả: <strong>26/01/2026 09:00</strong>" in page
    assert "ngày 05 tháng 01 năm 2026" in page


def test_an_online_dossier_without_appointment_says_it_will_be_notified() -> None:
    page = render_receipt_html(receipt(appointment_at=None))
    assert f"<strong>{APPOINTMENT_PENDING}</strong>" in page
    assert "không cần chữ ký" in page
    assert "NGƯỜI TIẾP NHẬN HỒ SƠ" not in page


def test_a_counter_receipt_has_signature_blocks() -> None:
    page = render_receipt_html(receipt(channel=Channel.COUNTER))
    assert "NGƯỜI NỘP HỒ SƠ" in page and "NGƯỜI TIẾP NHẬN HỒ SƠ" in page
    assert "Trực tiếp tại Bộ phận Một cửa" in page


def test_user_data_is_escaped() -> None:
    page = render_receipt_html(
        receipt(
            applicant_name="<script>alert('x')</script>",
            documents=[("Tờ khai", '"><img src=x onerror=alert(1)>.pdf')],
        )
    )
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<img" not in page


def test_the_tracking_link_is_shown_and_encoded_as_an_inline_qr_svg() -> None:
    page = render_receipt_html(receipt())
    assert "<svg" in page and "</svg>" in page
    assert "?s=Xy7_k2" in page
    # A different link gives a different code.
    other = render_receipt_html(receipt(tracking_url=TRACKING_URL + "9"))
    svg = page[page.index("<svg") : page.index("</svg>")]
    other_svg = other[other.index("<svg") : other.index("</svg>")]
    assert svg != other_svg


def test_optional_lines_processing_time_secret_and_no_fee() -> None:
    page = render_receipt_html(
        receipt(processing_time_text="15 ngày làm việc", tracking_secret="K9-QX", fee_vnd=0)
    )
    assert "3. Thời gian giải quyết hồ sơ theo quy định: 15 ngày làm việc" in page
    assert "4. Thời gian nhận hồ sơ" in page
    assert "Mã tra cứu bí mật: <strong>K9-QX</strong>" in page
    assert "Không thu phí" in page
    without = render_receipt_html(receipt())
    assert "3. Thời gian nhận hồ sơ" in without
    assert "Mã tra cứu bí mật" not in without


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError):
        receipt(submitted_at=datetime(2026, 1, 5, 8, 30))


def test_the_json_receipt_round_trips() -> None:
    data = receipt()
    assert ReceiptData.model_validate(data.model_dump(mode="json")) == data


@pytest.mark.parametrize(
    ("amount", "text"), [(0, "0 đồng"), (500, "500 đồng"), (1500000, "1.500.000 đồng")]
)
def test_amounts_use_vietnamese_grouping(amount: int, text: str) -> None:
    assert format_vnd(amount) == text

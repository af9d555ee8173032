"""Vietnamese labels and formats for what the pages show (pure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from shared.contracts.catalogue import Procedure, ProcessingTime, TimeUnit
from shared.contracts.events import DossierState

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

STATE_LABELS: dict[int, str] = {
    DossierState.SUBMITTED: "Đã nộp trực tuyến, chờ tiếp nhận",
    DossierState.RECEIVED: "Đã tiếp nhận",
    DossierState.NOT_RECEIVED: "Không tiếp nhận",
    DossierState.IN_PROCESSING: "Đang xử lý",
    DossierState.SUPPLEMENT_REQUESTED: "Yêu cầu bổ sung hồ sơ",
    DossierState.PAYMENT_REQUESTED: "Yêu cầu thực hiện nghĩa vụ tài chính",
    DossierState.WITHDRAWAL_REQUESTED: "Đã yêu cầu rút hồ sơ",
    DossierState.STOPPED: "Dừng xử lý",
    DossierState.PROCESSED: "Đã có kết quả",
    DossierState.RESULT_RETURNED: "Đã trả kết quả",
}

LEVEL_LABELS: dict[int, str] = {
    1: "Mức độ 1",
    2: "Mức độ 2",
    3: "Mức độ 3",
    4: "Mức độ 4",
}
LEVEL_DESCRIPTIONS: dict[int, str] = {
    1: "Cung cấp thông tin; nộp hồ sơ trực tiếp hoặc qua bưu chính",
    2: "Tải mẫu đơn trực tuyến; nộp hồ sơ trực tiếp hoặc qua bưu chính",
    3: "Dịch vụ công trực tuyến một phần: nộp hồ sơ trực tuyến",
    4: "Dịch vụ công trực tuyến toàn trình: nộp, thanh toán và nhận kết quả trực tuyến",
}

TIME_UNIT_LABELS: dict[TimeUnit, str] = {
    TimeUnit.WORKING_DAYS: "ngày làm việc",
    TimeUnit.CALENDAR_DAYS: "ngày",
    TimeUnit.WORKING_HOURS: "giờ làm việc",
    TimeUnit.MONTHS: "tháng",
}

FORMAT_LABELS: dict[str, str] = {
    "pdf": "PDF",
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "tiff": "TIFF",
    "webp": "WEBP",
    "docx": "Word (DOCX)",
    "doc": "Word (DOC)",
    "xlsx": "Excel (XLSX)",
    "xls": "Excel (XLS)",
    "pptx": "PowerPoint (PPTX)",
    "odt": "ODT",
    "ods": "ODS",
    "zip": "ZIP",
}
# File-name extensions each catalogue format is known by (the `accept` attribute of inputs).
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "jpg": (".jpg", ".jpeg"),
    "tiff": (".tif", ".tiff"),
}


def level_label(level: int) -> str:
    return LEVEL_LABELS.get(level, f"Mức độ {level}")


def accepts_online(level: int) -> bool:
    """Levels 3 and 4 take dossiers online; 1 and 2 at the counter or by post."""
    return level >= 3


def processing_time_text(time: ProcessingTime | None) -> str:
    """`15 ngày làm việc`, `1,5 tháng`; "Chưa công bố" when the catalogue has none."""
    if time is None:
        return "Chưa công bố"
    return f"{number_text(time.value)} {TIME_UNIT_LABELS[time.unit]}"


def number_text(value: float) -> str:
    """`15.0` -> `15`, `1.5` -> `1,5` (Vietnamese decimal comma)."""
    return f"{value:g}".replace(".", ",")


def money_text(amount_vnd: int) -> str:
    """`1500000` -> `1.500.000 đồng`; `0` -> `Không thu phí`."""
    if amount_vnd == 0:
        return "Không thu phí"
    return f"{amount_vnd:,}".replace(",", ".") + " đồng"


def size_text(size_bytes: int) -> str:
    """`10485760` -> `10 MB`, `1572864` -> `1,5 MB`, `2048` -> `2 KB`."""
    if size_bytes >= 1024 * 1024:
        return f"{number_text(round(size_bytes / (1024 * 1024), 1))} MB"
    if size_bytes >= 1024:
        return f"{number_text(round(size_bytes / 1024, 1))} KB"
    return f"{size_bytes} byte"


def formats_text(formats: list[str]) -> str:
    """`["pdf", "jpg"]` -> `PDF, JPEG`."""
    return ", ".join(FORMAT_LABELS.get(f.lower(), f.upper()) for f in formats)


def accept_attribute(formats: list[str]) -> str:
    """The `accept` attribute of a file input for these catalogue formats (`.pdf,.jpg,.jpeg`)."""
    extensions: list[str] = []
    for name in formats:
        name = name.lower()
        for extension in FORMAT_EXTENSIONS.get(name, (f".{name}",)):
            if extension not in extensions:
                extensions.append(extension)
    return ",".join(extensions)


def _moment(value: datetime | str | None) -> datetime | None:
    """A datetime, or one from ISO 8601 text (intake's JSON); None if absent or unreadable."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return value


def date_text(value: datetime | str | None) -> str:
    """`05/12/2026` in Vietnam's time zone."""
    moment = _moment(value)
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y") if moment else ""


def datetime_text(value: datetime | str | None) -> str:
    """`14:05 ngày 05/12/2026` in Vietnam's time zone."""
    moment = _moment(value)
    if moment is None:
        return ""
    local = moment.astimezone(VIETNAM)
    return f"{local:%H:%M} ngày {local:%d/%m/%Y}"


def in_person_guidance(procedure: Procedure) -> list[str]:
    """Where and how to submit a procedure that is not offered online (levels 1 and 2)."""
    return [
        f"Nộp trực tiếp tại Bộ phận Một cửa của {procedure.unit_name}, "
        "trong giờ hành chính (sáng 8:00–12:00, chiều 13:00–17:00, thứ Hai đến thứ Sáu).",
        "Hoặc gửi qua dịch vụ bưu chính công ích đến Bộ phận Một cửa của đơn vị.",
        "Mang theo bản chính hoặc bản sao các giấy tờ trong thành phần hồ sơ dưới đây, "
        "cùng giấy tờ tùy thân (căn cước công dân) để đối chiếu.",
    ]

"""The receipt given for a dossier: Form 01 of Circular 01/2018/TT-VPCP, "Giấy tiếp nhận hồ sơ và
hẹn trả kết quả", as data (`ReceiptData`, also the JSON receipt) and as a printable HTML page.

Pure: the page is self-contained (inline CSS, the tracking QR code as inline SVG), every value from
the dossier is HTML-escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import segno
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.catalogue import ProcessingTime, TimeUnit
from shared.contracts.events import Channel

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

CHANNEL_LABELS: dict[Channel, str] = {
    Channel.COUNTER: "Trực tiếp tại Bộ phận Một cửa",
    Channel.ONLINE: "Trực tuyến qua Cổng Dịch vụ công",
    Channel.POST: "Qua dịch vụ bưu chính công ích",
}
APPOINTMENT_PENDING = "Sẽ thông báo khi hồ sơ được tiếp nhận"


class ReceiptData(BaseModel):
    """What a receipt shows; `model_dump(mode="json")` is the JSON receipt."""

    model_config = ConfigDict(frozen=True)

    dossier_code: str
    procedure_code: str
    procedure_name: str
    unit_name: str = Field(description="The unit that processes the dossier")
    applicant_name: str
    applicant_identifier_masked: str
    channel: Channel
    submitted_at: AwareDatetime
    # An online dossier gets its appointment when the unit receives it (state RECEIVED).
    appointment_at: AwareDatetime | None = None
    documents: list[tuple[str, str]] = Field(
        default_factory=list, description="(document name, file name); file name may be empty"
    )
    fee_vnd: int = Field(default=0, ge=0)
    tracking_url: str
    agency_name: str
    tracking_secret: str | None = Field(
        default=None, description="Printed only on the applicant's copy; omit if in the URL"
    )
    processing_time_text: str | None = Field(
        default=None, description='The legal processing time, e.g. "15 ngày làm việc"'
    )
    place_name: str = "Hà Nội"


TIME_UNIT_LABELS = {
    TimeUnit.WORKING_DAYS: "ngày làm việc",
    TimeUnit.CALENDAR_DAYS: "ngày",
    TimeUnit.WORKING_HOURS: "giờ làm việc",
    TimeUnit.MONTHS: "tháng",
}


def processing_time_text(time: ProcessingTime | None) -> str | None:
    """The legal processing time as printed, e.g. "15 ngày làm việc"."""
    return f"{time.value:g} {TIME_UNIT_LABELS[time.unit]}" if time else None


def format_local(moment: datetime) -> str:
    """`dd/mm/yyyy HH:MM` in Asia/Ho_Chi_Minh."""
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def format_vnd(amount: int) -> str:
    """`1500000` -> `1.500.000 đồng` (Vietnamese digit grouping)."""
    return f"{amount:,}".replace(",", ".") + " đồng"


def qr_svg(text: str, *, scale: int = 3) -> Markup:
    """An inline SVG QR code of `text` (error correction M); safe markup made by segno."""
    svg = segno.make(text, error="m").svg_inline(scale=scale, dark="#000", light="#fff")
    return Markup(svg)  # generated geometry only: no user text inside


_TEMPLATE = """<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Giấy tiếp nhận hồ sơ {{ r.dossier_code }}</title>
<style>
  @page { size: A4; margin: 20mm 20mm 20mm 25mm; }
  body { font-family: "Times New Roman", Times, serif; font-size: 13pt; line-height: 1.4;
         color: #000; max-width: 170mm; margin: 0 auto; padding: 8mm 0; }
  .header { display: flex; justify-content: space-between; text-align: center; }
  .header div { width: 48%; }
  .upper { text-transform: uppercase; font-weight: bold; }
  .motto { font-weight: bold; text-decoration: underline; text-underline-offset: 3px; }
  .date { text-align: right; font-style: italic; margin: 4mm 0; }
  h1 { text-align: center; font-size: 14pt; margin: 6mm 0 2mm; }
  .code { text-align: center; font-size: 16pt; font-weight: bold; letter-spacing: 1px;
          border: 1px solid #000; padding: 2mm; margin: 0 auto 5mm; width: fit-content; }
  table.documents { border-collapse: collapse; width: 100%; margin: 2mm 0; }
  table.documents th, table.documents td { border: 1px solid #000; padding: 1.5mm 2mm;
                                           vertical-align: top; }
  table.documents th { background: #eee; }
  .tracking { display: flex; gap: 6mm; align-items: center; border-top: 1px dashed #000;
              margin-top: 6mm; padding-top: 4mm; }
  .tracking .url { word-break: break-all; font-family: monospace; font-size: 10pt; }
  .signatures { display: flex; justify-content: space-between; text-align: center;
                margin-top: 8mm; min-height: 30mm; }
  .signatures div { width: 45%; }
  .note { font-style: italic; font-size: 11pt; }
  @media print { body { padding: 0; } .no-print { display: none; } }
</style>
</head>
<body>
<div class="header">
  <div>
    <div class="upper">{{ r.agency_name }}</div>
    <div class="upper">Bộ phận tiếp nhận và trả kết quả</div>
  </div>
  <div>
    <div class="upper">Cộng hòa xã hội chủ nghĩa Việt Nam</div>
    <div class="motto">Độc lập - Tự do - Hạnh phúc</div>
  </div>
</div>
<p class="date">{{ r.place_name }}, ngày {{ day }} tháng {{ month }} năm {{ year }}</p>

<h1>GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ</h1>
<div class="code">Mã hồ sơ: {{ r.dossier_code }}</div>

<p>{{ r.agency_name }} tiếp nhận hồ sơ của: <strong>{{ r.applicant_name }}</strong></p>
<p>Số định danh / mã số thuế: {{ r.applicant_identifier_masked }}</p>
<p>Nội dung yêu cầu giải quyết: {{ r.procedure_name }} (mã thủ tục {{ r.procedure_code }})</p>
<p>Đơn vị giải quyết: {{ r.unit_name }}</p>

<p>1. Thành phần hồ sơ nộp gồm:</p>
<table class="documents">
  <thead><tr><th>STT</th><th>Tên giấy tờ</th><th>Tệp đính kèm</th></tr></thead>
  <tbody>
  {%- for name, file_name in r.documents %}
    <tr><td>{{ loop.index }}</td><td>{{ name }}</td><td>{{ file_name or "—" }}</td></tr>
  {%- else %}
    <tr><td colspan="3">Không có giấy tờ kèm theo</td></tr>
  {%- endfor %}
  </tbody>
</table>
<p>2. Số lượng hồ sơ: 01 bộ</p>
{%- if r.processing_time_text %}
<p>3. Thời gian giải quyết hồ sơ theo quy định: {{ r.processing_time_text }}</p>
{%- endif %}
<p>{{ n(3) }}. Thời gian nhận hồ sơ: {{ submitted }}</p>
<p>{{ n(4) }}. Thời gian hẹn trả kết quả: <strong>{{ appointment }}</strong></p>
<p>{{ n(5) }}. Hình thức nộp hồ sơ: {{ channel }}</p>
<p>{{ n(6) }}. Phí, lệ phí: {{ fee }}</p>

<div class="tracking">
  <div role="img" aria-label="Mã QR tra cứu hồ sơ">{{ qr }}</div>
  <div>
    <p><strong>Tra cứu tình trạng hồ sơ:</strong> quét mã QR hoặc truy cập</p>
    <p class="url">{{ r.tracking_url }}</p>
    {%- if r.tracking_secret %}
    <p>Mã tra cứu bí mật: <strong>{{ r.tracking_secret }}</strong>
       (giữ kín; cần khi tra cứu, bổ sung hoặc rút hồ sơ)</p>
    {%- endif %}
  </div>
</div>

{%- if online %}
<p class="note">Giấy tiếp nhận được tạo tự động cho hồ sơ nộp trực tuyến, không cần chữ ký.</p>
{%- else %}
<div class="signatures">
  <div><strong>NGƯỜI NỘP HỒ SƠ</strong><br><em>(Ký và ghi rõ họ tên)</em></div>
  <div><strong>NGƯỜI TIẾP NHẬN HỒ SƠ</strong><br><em>(Ký và ghi rõ họ tên)</em></div>
</div>
{%- endif %}
</body>
</html>
"""

_environment = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
_template = _environment.from_string(_TEMPLATE)


def render_receipt_html(data: ReceiptData) -> str:
    """The receipt as a printable, self-contained HTML page (A4), in Vietnamese."""
    issued = data.submitted_at.astimezone(VIETNAM)
    offset = 1 if data.processing_time_text else 0
    return _template.render(
        r=data,
        day=f"{issued.day:02d}",
        month=f"{issued.month:02d}",
        year=issued.year,
        submitted=format_local(data.submitted_at),
        appointment=(
            format_local(data.appointment_at) if data.appointment_at else APPOINTMENT_PENDING
        ),
        channel=CHANNEL_LABELS[data.channel],
        fee=format_vnd(data.fee_vnd) if data.fee_vnd else "Không thu phí",
        qr=qr_svg(data.tracking_url),
        online=data.channel == Channel.ONLINE,
        n=lambda number: number + offset,
    )

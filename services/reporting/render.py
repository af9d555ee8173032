"""CSV and HTML renderings of the quarterly report."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.reporting.domain.contributions import FIELDS
from services.reporting.domain.report import QuarterlyReport, Section

LABELS_VI: dict[str, str] = {
    "received": "Tiếp nhận",
    "online": "Trực tuyến",
    "counter": "Trực tiếp",
    "post": "Bưu chính",
    "with_fee": "Có phí, lệ phí",
    "paid_online": "Thanh toán trực tuyến",
    "in_progress": "Đang giải quyết",
    "in_progress_overdue": "Đang giải quyết quá hạn",
    "in_progress_late_by_supplements": "Đang giải quyết, trễ hạn do bổ sung quá 1 lần",
    "results_issued": "Đã có kết quả",
    "digitised": "Số hóa (hồ sơ và kết quả điện tử)",
    "finished_early": "Giải quyết trước hạn",
    "finished_on_time": "Giải quyết đúng hạn",
    "finished_late": "Giải quyết quá hạn",
    "refused": "Từ chối / không tiếp nhận",
    "withdrawn": "Rút hồ sơ",
    "supplement_requests": "Yêu cầu bổ sung",
    "notified_delivered": "Thông báo đã gửi",
    "notified_failed": "Thông báo lỗi",
    "rated": "Lượt đánh giá",
    "rated_satisfied": "Đánh giá hài lòng",
    "rating_points": "Tổng điểm đánh giá",
}
INDICATOR_CODES = (
    "on_time_rate",
    "online_rate",
    "online_payment_rate",
    "digitisation_rate",
    "overdue_rate",
    "satisfaction_rate",
)

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _sections(report: QuarterlyReport) -> list[tuple[str, Section]]:
    return [("ministry", report.ministry)] + [(s.unit_code or "", s) for s in report.units]


def to_csv(report: QuarterlyReport) -> str:
    """One row for the ministry (or the unit of a unit head), then one per unit."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["scope", "unit_code", "unit_name", "quarters", *FIELDS, *INDICATOR_CODES])
    for scope, section in _sections(report):
        percents = {i.code: i.percent for i in section.indicators}
        writer.writerow(
            [
                scope if scope == "ministry" else "unit",
                section.unit_code or "",
                section.unit_name or "",
                " ".join(report.quarters),
                *(section.counts[f] for f in FIELDS),
                *("" if percents[c] is None else f"{percents[c]:.2f}" for c in INDICATOR_CODES),
            ]
        )
    return out.getvalue()


def to_html(report: QuarterlyReport) -> str:
    return _env.get_template("quarterly.html").render(
        report=report, labels=LABELS_VI, fields=FIELDS
    )

"""The unit head's page (`/can-bo/bao-cao`): the unit's quarterly report from reporting, with the
officer's own token (reporting scopes a unit head to the token's unit), as an HTML table and a
bar chart drawn in SVG on the server (no script), and its CSV passed through from reporting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.portal.domain.figures import percent_text
from services.portal.workspace import views
from services.portal.workspace.routes import HOME, SignedIn, WorkspaceDep

REPORT = f"{HOME}/bao-cao"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

# The counts shown, in the report's order, with their Vietnamese labels.
COUNT_LABELS: dict[str, str] = {
    "received": "Hồ sơ tiếp nhận",
    "online": "Trong đó: trực tuyến",
    "counter": "Trong đó: trực tiếp",
    "post": "Trong đó: qua bưu chính",
    "in_progress": "Đang giải quyết",
    "in_progress_overdue": "Đang giải quyết, quá hạn",
    "finished_early": "Giải quyết trước hạn",
    "finished_on_time": "Giải quyết đúng hạn",
    "finished_late": "Giải quyết quá hạn",
    "results_issued": "Kết quả đã ban hành",
    "refused": "Từ chối, dừng giải quyết",
    "withdrawn": "Rút hồ sơ",
    "supplement_requests": "Lượt yêu cầu bổ sung",
    "paid_online": "Thanh toán trực tuyến",
    "rated": "Lượt đánh giá",
    "rated_satisfied": "Đánh giá hài lòng",
}

# The chart: one bar per indicator, 0-100 %.
CHART_WIDTH = 640
BAR_HEIGHT = 22
BAR_GAP = 14
LABEL_WIDTH = 250
SCALE_WIDTH = CHART_WIDTH - LABEL_WIDTH - 60


@dataclass(frozen=True)
class Quarter:
    year: int
    quarter: int

    @classmethod
    def current(cls, now: datetime) -> Quarter:
        local = now.astimezone(VIETNAM)
        return cls(local.year, (local.month - 1) // 3 + 1)

    @classmethod
    def chosen(cls, year: int | None, quarter: int | None, now: datetime) -> Quarter:
        current = cls.current(now)
        if year is None or quarter is None:
            return current
        return cls(year, quarter)

    @property
    def label(self) -> str:
        return f"Quý {self.quarter} năm {self.year}"

    def recent(self, count: int = 8) -> list[Quarter]:
        """This quarter and the ones before it (the period picker's choices)."""
        found, year, quarter = [], self.year, self.quarter
        for _ in range(count):
            found.append(Quarter(year, quarter))
            year, quarter = (year - 1, 4) if quarter == 1 else (year, quarter - 1)
        return found


@dataclass(frozen=True)
class Bar:
    label: str
    percent: float | None
    detail: str
    y: int
    width: float
    target_x: float | None

    @property
    def text(self) -> str:
        """The percentage as Vietnamese writes it (`87,5%`), as on the public figures page."""
        return percent_text(self.percent)


def count_rows(section: dict[str, Any]) -> list[tuple[str, int]]:
    counts = section.get("counts") or {}
    return [(label, int(counts.get(key, 0))) for key, label in COUNT_LABELS.items()]


def indicator_bars(section: dict[str, Any]) -> list[Bar]:
    """The indicators as bars of the SVG chart (a bar's length is its percentage)."""
    bars = []
    for n, indicator in enumerate(section.get("indicators") or []):
        percent = indicator.get("percent")
        target = indicator.get("target_percent")
        bars.append(
            Bar(
                label=str(indicator.get("name") or indicator.get("code")),
                percent=None if percent is None else float(percent),
                detail=f"{indicator.get('numerator', 0)}/{indicator.get('denominator', 0)}",
                y=n * (BAR_HEIGHT + BAR_GAP),
                width=0 if percent is None else SCALE_WIDTH * min(float(percent), 100) / 100,
                target_x=None
                if target is None
                else LABEL_WIDTH + SCALE_WIDTH * min(float(target), 100) / 100,
            )
        )
    return bars


def unit_section(report: dict[str, Any], unit: str | None) -> dict[str, Any]:
    """The unit's section (a unit head's report has one); the ministry's otherwise."""
    for section in report.get("units") or []:
        if unit is None or section.get("unit_code") == unit:
            return dict(section)
    return dict(report.get("ministry") or {})


router = APIRouter(include_in_schema=False)
Year = Annotated[int | None, Query(alias="nam", ge=2000, le=2100)]
QuarterQuery = Annotated[int | None, Query(alias="quy", ge=1, le=4)]


@router.get(REPORT)
async def report_page(
    request: Request,
    workspace: WorkspaceDep,
    session: SignedIn,
    year: Year = None,
    quarter: QuarterQuery = None,
) -> Response:
    if not (session.profile and session.profile.roles & views.HEAD_ROLES):
        return workspace.error(request, 403)
    now = datetime.now(UTC)
    chosen = Quarter.chosen(year, quarter, now)
    token = await workspace.access_token(session, REPORT)
    report = await workspace.apis.quarterly_report(token, chosen.year, chosen.quarter)
    section = unit_section(report, session.profile.unit)
    bars = indicator_bars(section)
    return workspace.render(
        request,
        "workspace/report.html",
        {
            "chosen": chosen,
            "choices": Quarter.current(now).recent(),
            "section": section,
            "rows": count_rows(section),
            "bars": bars,
            "chart": {
                "width": CHART_WIDTH,
                "height": max(1, len(bars)) * (BAR_HEIGHT + BAR_GAP),
                "label_width": LABEL_WIDTH,
                "bar_height": BAR_HEIGHT,
            },
            "csv_query": f"nam={chosen.year}&quy={chosen.quarter}",
        },
        session=session,
    )


@router.get(REPORT + ".csv")
async def report_csv(
    request: Request,
    workspace: WorkspaceDep,
    session: SignedIn,
    year: Year = None,
    quarter: QuarterQuery = None,
) -> Response:
    """Reporting's CSV of the quarter, fetched with the unit head's token."""
    if not (session.profile and session.profile.roles & views.HEAD_ROLES):
        return workspace.error(request, 403)
    chosen = Quarter.chosen(year, quarter, datetime.now(UTC))
    token = await workspace.access_token(session, REPORT)
    found = await workspace.apis.quarterly_csv(token, chosen.year, chosen.quarter)
    return Response(
        found.data,
        media_type=found.content_type,
        headers={
            "Content-Disposition": views.as_attachment(
                found.content_disposition
                or f'attachment; filename="bao-cao-{chosen.year}-Q{chosen.quarter}.csv"'
            ),
            "Cache-Control": "private, no-store",
        },
    )

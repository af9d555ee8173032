"""The public year-to-date figures as the portal shows them (pure): reporting's
`GET /api/v1/public/figures` answer, and the bars of its charts (inline SVG, drawn by the
template from the geometry computed here, each with its text equivalent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict

from .labels import number_text

# The SVG's coordinate system: a label line above each bar, the value right of the bar area.
CHART_WIDTH = 400
BAR_AREA = 300
ROW_HEIGHT = 44
BAR_HEIGHT = 16
LABEL_Y = 16
BAR_Y = 22
MAX_LABEL = 48


class LevelShare(BaseModel):
    model_config = ConfigDict(extra="ignore")

    level4_procedures: int = 0
    online_procedures: int = 0
    level4_percent: float | None = None
    target_percent: float = 30.0
    meets_target: bool | None = None


class Figures(BaseModel):
    model_config = ConfigDict(extra="ignore")

    received: int = 0
    online: int = 0
    online_percent: float | None = None
    resolved: int = 0
    on_time_percent: float | None = None
    rated: int = 0
    satisfaction_percent: float | None = None
    average_score: float | None = None


class MinistryFigures(Figures):
    level4: LevelShare = LevelShare()


class UnitFigures(Figures):
    unit_code: str
    unit_name: str | None = None
    level4: LevelShare = LevelShare()

    @property
    def name(self) -> str:
        return self.unit_name or self.unit_code


class ProcedureFigures(Figures):
    procedure_code: str
    procedure_name: str | None = None
    unit_code: str
    level: int | None = None

    @property
    def name(self) -> str:
        return self.procedure_name or self.procedure_code


class PublicFigures(BaseModel):
    model_config = ConfigDict(extra="ignore")

    year: int
    quarters: list[str] = []
    as_of: date
    ministry: MinistryFigures
    units: list[UnitFigures] = []
    procedures: list[ProcedureFigures] = []


def percent_text(value: float | None) -> str:
    """`87.5` -> `87,5%`; None -> `Chưa có số liệu`."""
    if value is None:
        return "Chưa có số liệu"
    return f"{number_text(round(value, 1))}%"


def score_text(value: float | None) -> str:
    return "Chưa có đánh giá" if value is None else f"{number_text(round(value, 1))}/5"


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the value as read aloud and printed next to the bar
    width: float  # in the SVG's units, 0..BAR_AREA
    y_label: int
    y_bar: int
    y_text: int
    meets: bool | None = None  # against the chart's target, when it has one
    # Where the text starts: right of the bar area, or inside the empty track when there is no
    # value ("Chưa có số liệu" is wider than the room on the right).
    x_text: int = BAR_AREA + 6


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart of percentages: its title, the bars, the target line (if any), the
    SVG's height and a one-sentence summary for `aria-label`-free readers (`<desc>`)."""

    id: str
    title: str
    bars: list[Bar]
    height: int
    target_x: float | None
    target_text: str | None
    summary: str

    @property
    def width(self) -> int:
        return CHART_WIDTH

    @property
    def bar_area(self) -> int:
        return BAR_AREA

    @property
    def bar_height(self) -> int:
        return BAR_HEIGHT


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1].rstrip() + "…"


def bar_chart(
    chart_id: str,
    title: str,
    rows: list[tuple[str, float | None]],
    *,
    target: float | None = None,
) -> Chart:
    """Bars of percentages (None: no data, drawn empty and read as such), 0..100."""
    bars = []
    for index, (label, value) in enumerate(rows):
        top = index * ROW_HEIGHT
        clamped = 0.0 if value is None else max(0.0, min(100.0, value))
        bars.append(
            Bar(
                label=_short(label),
                text=percent_text(value),
                width=round(BAR_AREA * clamped / 100, 1),
                y_label=top + LABEL_Y,
                y_bar=top + BAR_Y,
                y_text=top + BAR_Y + BAR_HEIGHT - 3,
                meets=None if target is None or value is None else value >= target,
                x_text=6 if value is None else BAR_AREA + 6,
            )
        )
    summary = "; ".join(f"{bar.label}: {bar.text}" for bar in bars) or "Chưa có số liệu"
    target_text = None if target is None else f"Mục tiêu: {percent_text(target)}"
    return Chart(
        id=chart_id,
        title=title,
        bars=bars,
        height=max(1, len(bars)) * ROW_HEIGHT + 4,
        target_x=None if target is None else round(BAR_AREA * target / 100, 1),
        target_text=target_text,
        summary=f"{title}. {summary}." + (f" {target_text}." if target_text else ""),
    )


def unit_charts(figures: PublicFigures) -> list[Chart]:
    """The charts of the figures page: per unit, the online share, the on-time share, the
    level-4 share against its target, and satisfaction."""
    units = [u for u in figures.units if u.received or u.level4.online_procedures]
    target = figures.ministry.level4.target_percent
    return [
        bar_chart(
            "bieu-do-truc-tuyen",
            "Tỷ lệ hồ sơ nộp trực tuyến theo đơn vị",
            [(u.name, u.online_percent) for u in units],
        ),
        bar_chart(
            "bieu-do-dung-han",
            "Tỷ lệ hồ sơ giải quyết đúng hạn theo đơn vị",
            [(u.name, u.on_time_percent) for u in units],
        ),
        bar_chart(
            "bieu-do-muc-do-4",
            "Tỷ lệ dịch vụ công trực tuyến mức độ 4 theo đơn vị",
            [(u.name, u.level4.level4_percent) for u in units],
            target=target,
        ),
        bar_chart(
            "bieu-do-hai-long",
            "Mức độ hài lòng theo đơn vị",
            [(u.name, u.satisfaction_percent) for u in units],
        ),
    ]


def available_years(as_of: date, first: int = 2019) -> list[int]:
    """The years a citizen may choose, newest first (the decision dates from 2019)."""
    return list(range(as_of.year, first - 1, -1))

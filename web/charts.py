"""Charts drawn on the server as SVG: no script, no library, nothing from another host, and nothing the
Content-Security-Policy has to allow (colours come from classes in app.css, not inline styles).

`bar_chart()` lays out horizontal bars — one per row, optionally stacked from several series — and keeps
the numbers, so the template shows them a click away in a table under the drawing."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

LABEL_WIDTH = 170
PLOT_WIDTH = 420
VALUE_WIDTH = 90
BAR_HEIGHT = 18
GAP = 8
TOP = 4
MAX_LABEL = 26


@dataclass
class Segment:
    series: int
    name: str
    value: float
    x: float
    width: float


@dataclass
class Bar:
    label: str
    short_label: str
    total: float
    total_text: str
    y: float
    text_y: float
    segments: list[Segment] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)


@dataclass
class Chart:
    id: str
    title: str
    series: list[tuple[int, str]]
    bars: list[Bar]
    width: int
    height: int
    empty_text: str
    unit: str

    @property
    def empty(self) -> bool:
        return not self.bars or all(b.total == 0 for b in self.bars)

    @property
    def plot_x(self) -> int:
        return LABEL_WIDTH

    @property
    def value_x(self) -> int:
        return LABEL_WIDTH + PLOT_WIDTH + 6


def _number(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, Decimal):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _text(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.4f}"
    if unit == "%":
        return f"{100 * value:.1f} %"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def bar_chart(
    chart_id: str,
    title: str,
    rows: list[tuple[str, list]],
    *,
    series: list[str] | None = None,
    unit: str = "",
    empty_text: str = "Nothing to draw yet.",
) -> Chart:
    """rows: (label, [value per series]). The longest total fills the plot; stacked segments keep the
    series' order (and colour class s0, s1, …)."""
    series = list(series or ["value"])
    values = [(str(label), [_number(v) for v in vals]) for label, vals in rows]
    largest = max((sum(v) for _, v in values), default=0) or 1
    bars = []
    for i, (label, vals) in enumerate(values):
        y = TOP + i * (BAR_HEIGHT + GAP)
        bar = Bar(
            label=label,
            short_label=label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…",
            total=sum(vals),
            total_text=_text(sum(vals), unit),
            y=y,
            text_y=y + BAR_HEIGHT - 4,
            cells=[_text(v, unit) for v in vals],
        )
        x = float(LABEL_WIDTH)
        for s, v in enumerate(vals):
            width = PLOT_WIDTH * v / largest
            if v > 0:
                bar.segments.append(Segment(s, series[s], v, round(x, 1), round(max(width, 1), 1)))
            x += width
        bars.append(bar)
    height = TOP * 2 + len(bars) * (BAR_HEIGHT + GAP)
    return Chart(
        id=chart_id,
        title=title,
        series=list(enumerate(series)),
        bars=bars,
        width=LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH,
        height=max(height, BAR_HEIGHT + 2 * TOP),
        empty_text=empty_text,
        unit=unit,
    )

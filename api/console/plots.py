"""Line plots of a job's metric series, laid out server-side for an inline SVG.

Pure functions: metric points in, pixel coordinates and axis ticks out. The template draws
them, so every label passes through the template's escaping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from tailor.jobs.schemas import MetricPoint

# Colour-blind-safe (Okabe-Ito) colours, one per series.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
LOSS_SERIES = ("loss", "train_loss", "eval_loss")


@dataclass(frozen=True)
class Line:
    """One series as an SVG polyline."""

    name: str
    colour: str
    points: str  # "x,y x,y ..."
    last: float


@dataclass(frozen=True)
class Tick:
    """An axis tick: where, and its label."""

    at: float
    label: str


@dataclass(frozen=True)
class Plot:
    """Everything the template needs to draw a plot."""

    title: str
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    lines: list[Line] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_label: str = "step"

    @property
    def empty(self) -> bool:
        """No point to draw yet."""
        return not self.lines


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values spanning [low, high] (1, 2, 5 times a power of ten apart)."""
    if high <= low:
        return [low]
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 12))
        value += step
    return ticks or [low]


def _label(value: float, step: float) -> str:
    """A tick label with as many decimals as the tick spacing needs, and no more."""
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.2e}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{min(decimals, 6)}f}"


def _ticks(low: float, high: float, scale: Callable[[float], float]) -> list[Tick]:
    values = _nice_ticks(low, high)
    step = values[1] - values[0] if len(values) > 1 else abs(low) or 1.0
    return [Tick(scale(v), _label(v, step)) for v in values if low <= v <= high or low == high]


def line_plot(
    series: dict[str, list[MetricPoint]],
    names: Sequence[str],
    title: str,
    width: int = 640,
    height: int = 280,
) -> Plot:
    """A plot of the named series that exist and hold finite values."""
    left, top, right, bottom = 56, 16, width - 16, height - 36
    chosen = {
        n: [p for p in series.get(n, []) if math.isfinite(p.value)] for n in names if n in series
    }
    chosen = {n: pts for n, pts in chosen.items() if pts}
    plot = Plot(title, width, height, left, top, right, bottom)
    if not chosen:
        return plot
    steps = [p.step for pts in chosen.values() for p in pts]
    values = [p.value for pts in chosen.values() for p in pts]
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def sx(step: float) -> float:
        return left + (right - left) * ((step - x0) / (x1 - x0) if x1 > x0 else 0.5)

    def sy(value: float) -> float:
        return bottom - (bottom - top) * (value - y0) / (y1 - y0)

    lines = [
        Line(
            name=name,
            colour=COLOURS[i % len(COLOURS)],
            points=" ".join(f"{sx(p.step):.1f},{sy(p.value):.1f}" for p in pts),
            last=pts[-1].value,
        )
        for i, (name, pts) in enumerate(chosen.items())
    ]
    x_ticks = _ticks(x0, x1, sx)
    y_ticks = _ticks(y0, y1, sy)
    return Plot(title, width, height, left, top, right, bottom, lines, x_ticks[:8], y_ticks[:8])


def job_plots(series: dict[str, list[MetricPoint]]) -> list[Plot]:
    """The loss curves first, then one small plot per other changing series (lr, tokens/s).

    A series that never changes (parameter counts, peak memory) says nothing as a line.
    """
    plots = [line_plot(series, LOSS_SERIES, "Loss")]
    for name in sorted(series):
        values = {p.value for p in series[name]}
        if name not in LOSS_SERIES and len(values) > 1:
            plots.append(line_plot(series, [name], name, width=320, height=200))
    return plots


@dataclass(frozen=True)
class Bar:
    """One histogram bin as an SVG rectangle, with its label and count."""

    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


@dataclass(frozen=True)
class Histogram:
    """Everything the template needs to draw a histogram."""

    title: str
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_label: str = ""

    @property
    def empty(self) -> bool:
        """No count to draw."""
        return not any(b.count for b in self.bars)


def histogram(
    labels: Sequence[str], counts: Sequence[int], title: str, x_label: str, width: int = 640
) -> Histogram:
    """Bars of `counts` (one per label), on a count axis from zero."""
    height = 240
    left, top, right, bottom = 56, 16, width - 16, height - 36
    top_count = max(counts, default=0) or 1
    slot = (right - left) / max(1, len(counts))

    def sy(value: float) -> float:
        return bottom - (bottom - top) * value / top_count

    bars = [
        Bar(left + i * slot + 2, sy(n), slot - 4, bottom - sy(n), label, n)
        for i, (label, n) in enumerate(zip(labels, counts, strict=True))
    ]
    ticks = [t for t in _ticks(0, top_count, sy) if float(t.label).is_integer()]
    return Histogram(title, width, height, left, top, right, bottom, bars, ticks, x_label)


def acceptance_plot(points: dict[str, list[tuple[int, float]]], since: str) -> Plot:
    """Acceptance rate per adapter version, by day (day 0 is `since`)."""
    series = {
        version: [MetricPoint(step=day, value=rate) for day, rate in pts]
        for version, pts in points.items()
    }
    plot = line_plot(series, sorted(series), "Acceptance rate")
    return replace(plot, x_label=f"days since {since}")


def spend_plot(
    series: dict[str, dict[date, float]], since: date, until: date, title: str, currency: str
) -> Plot:
    """Spend per day of each series (a job kind, a team) from `since` through `until`, with
    the days nothing was spent at zero so each line runs the whole period."""
    days = (until - since).days
    filled = {
        name: [
            MetricPoint(step=d, value=by_day.get(since + timedelta(days=d), 0.0))
            for d in range(days + 1)
        ]
        for name, by_day in series.items()
    }
    plot = line_plot(filled, sorted(filled), title)
    return replace(plot, x_label=f"days since {since.isoformat()} ({currency} per day)")

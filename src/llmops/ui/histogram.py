"""Layout of a histogram as SVG bars, drawn by the dataset pages as server-side SVG (no script needed).

A dataset version's statistics carry each length distribution's histogram as ``{"edges": [...], "counts":
[...]}`` (``datasets/stats.py``): ``len(edges) == len(counts) + 1``, linear bins, or logarithmic ones when the
lengths span more than 100×. Every bar is drawn equally wide whatever its bin's width and the axis is
labelled with bin edges, so a logarithmic histogram reads as one (the page says so). Statistics are stored
JSON, so a histogram of an unexpected shape gives no chart rather than an error. Coordinates are plain
numbers for the template; nothing here writes markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

WIDTH = 560
HEIGHT = 190
LEFT = 48  # room for the count labels
RIGHT = 12
TOP = 12
BOTTOM = 36  # room for the edge labels and the unit
GAP = 1.0  # between bars
X_TICKS = 5  # edge labels at most
LOG_SPAN = 100  # max / min beyond which datasets/stats.py uses logarithmic bins


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    lo: float
    hi: float
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    left: int
    right: int
    top: int
    bottom: int  # y of the baseline
    unit: str
    log: bool
    total: int


def edge_text(value: float) -> str:
    """A bin edge for an axis label: whole numbers as such, others with three significant digits."""
    if value == int(value) or abs(value) >= 100:
        return f"{round(value):,}"
    return f"{value:.3g}"


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        return None
    return [float(v) for v in value]


def build(histogram: Any, *, unit: str = "characters") -> Chart | None:
    """The bars and axis labels of ``histogram``, or None when it is empty or not a histogram."""
    if not isinstance(histogram, dict):
        return None
    edges, counts = _numbers(histogram.get("edges")), _numbers(histogram.get("counts"))
    if not edges or not counts or len(edges) != len(counts) + 1 or any(c < 0 for c in counts):
        return None
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    peak = max(counts) or 1.0
    slot = plot_w / len(counts)
    bars = []
    for i, count in enumerate(counts):
        height = count / peak * plot_h
        lo, hi = edges[i], edges[i + 1]
        rows = int(count)
        bars.append(
            Bar(
                x=round(LEFT + i * slot + GAP / 2, 2),
                y=round(base - height, 2),
                width=round(max(slot - GAP, 0.5), 2),
                height=round(height, 2),
                count=rows,
                lo=lo,
                hi=hi,
                title=f"{edge_text(lo)} to {edge_text(hi)} {unit}: {rows:,} row{'' if rows == 1 else 's'}",
            )
        )
    step = max(1, math.ceil(len(counts) / (X_TICKS - 1)))
    indices = sorted({*range(0, len(edges), step), len(edges) - 1})
    x_ticks = [Tick(x=round(LEFT + i * slot, 2), y=base + 14, text=edge_text(edges[i])) for i in indices]
    y_ticks = [Tick(x=LEFT - 6, y=round(base - f * plot_h, 2), text=f"{round(peak * f):,}") for f in (0.0, 0.5, 1.0)]
    if round(peak / 2) == round(peak) or round(peak / 2) == 0:
        y_ticks = [y_ticks[0], y_ticks[2]]  # a peak of 1: no half tick
    lowest = max(edges[0], 1.0)
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=round(base),
        unit=unit,
        log=len(edges) > 2 and (edges[-1] - 1) / lowest > LOG_SPAN,
        total=int(sum(counts)),
    )

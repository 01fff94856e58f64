"""Small server-side SVG charts for the monitoring report and page: lines over time and grouped bars.

The HTML report must be one self-contained file that opens anywhere (mailed, attached to a ticket), so its
charts are inline SVG written here rather than drawn by a script library; the UI page reuses them. Every
value is escaped; a series without numbers draws an empty frame that says "no data".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 40
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c")


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _frame(title: str, body: str, legend: Sequence[tuple[str, str]] = ()) -> str:
    keys = "".join(
        f'<rect x="{LEFT + i * 130}" y="6" width="10" height="10" fill="{color}"/>'
        f'<text x="{LEFT + 14 + i * 130}" y="15" font-size="11">{escape(name)}</text>'
        for i, (name, color) in enumerate(legend)
    )
    heading = (
        f'<text x="{WIDTH - RIGHT}" y="15" font-size="12" font-weight="bold" text-anchor="end">{escape(title)}</text>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">'
        f"<title>{escape(title)}</title>{heading}{keys}{body}</svg>"
    )


def _axis(top: float) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    ticks = "".join(
        f'<text x="{LEFT - 6}" y="{TOP + plot_h * (1 - f) + 4:.1f}" font-size="10" text-anchor="end">'
        f"{_fmt(top * f)}</text>"
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h * (1 - f):.1f}" '
        f'y2="{TOP + plot_h * (1 - f):.1f}" stroke="#e5e7eb"/>'
        for f in (0, 0.5, 1)
    )
    return ticks


def _no_data(title: str) -> str:
    return _frame(
        title,
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="13" fill="#6b7280">no data</text>',
    )


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], unit: str = "") -> str:
    """Lines over ``labels`` (x, evenly spaced); ``None`` values leave gaps."""
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if not values or not labels:
        return _no_data(title)
    top = max(values) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels) - 1)
    parts = [_axis(top)]
    for i, (_, points) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        path, pen = [], "M"
        for j, v in enumerate(points):
            if v is None or not math.isfinite(v):
                pen = "M"
                continue
            path.append(f"{pen}{LEFT + j * step:.1f},{TOP + plot_h * (1 - v / top):.1f}")
            pen = "L"
            parts.append(
                f'<circle cx="{LEFT + j * step:.1f}" cy="{TOP + plot_h * (1 - v / top):.1f}" r="2" fill="{color}">'
                f"<title>{escape(labels[j])}: {_fmt(v)} {escape(unit)}</title></circle>"
            )
        if path:
            parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    for j in sorted({0, len(labels) // 2, len(labels) - 1}):
        parts.append(
            f'<text x="{LEFT + j * step:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="10" text-anchor="middle">'
            f"{escape(labels[j])}</text>"
        )
    if unit:
        parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="10" fill="#6b7280">{escape(unit)}</text>')
    legend = [(name, COLORS[i % len(COLORS)]) for i, name in enumerate(series)]
    return _frame(title, "".join(parts), legend)


def bar_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], unit: str = "") -> str:
    """Grouped bars: one group per label, one bar per series (e.g. reference and current)."""
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if not values or not labels:
        return _no_data(title)
    top = max(values) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / len(labels)
    width = group * 0.8 / max(1, len(series))
    parts = [_axis(top)]
    for i, (name, points) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        for j, v in enumerate(points):
            if v is None or not math.isfinite(v):
                continue
            h = plot_h * v / top
            x = LEFT + j * group + group * 0.1 + i * width
            parts.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(labels[j])} ({escape(name)}): {_fmt(v)} {escape(unit)}</title></rect>"
            )
    every = max(1, math.ceil(len(labels) / 8))  # at most about eight labels under the bars
    for j, label in enumerate(labels):
        if j % every:
            continue
        short = label if len(label) <= 14 else label[:13] + "…"
        parts.append(
            f'<text x="{LEFT + j * group + group / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" '
            f'text-anchor="middle">{escape(short)}</text>'
        )
    if unit:
        parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="10" fill="#6b7280">{escape(unit)}</text>')
    legend = [(name, COLORS[i % len(COLORS)]) for i, name in enumerate(series)] if len(series) > 1 else []
    return _frame(title, "".join(parts), legend)

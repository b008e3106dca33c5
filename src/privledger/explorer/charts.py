"""Small server-side SVG charts for the cockpit: stacked columns over time, horizontal bars and a
donut. Pure functions from numbers to SVG text; colours come from CSS classes (``series-N``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape


def _nice_max(value: float) -> float:
    """The smallest 1/2/5×10^k at or above ``value`` (at least 1): a round top for an axis."""
    if value <= 1:
        return 1
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 2.0, 5.0, 10.0) if step * power >= value)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.3g}"


def _empty(width: int, height: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="no data">'
        f'<text x="{width // 2}" y="{height // 2}" class="empty-chart">no data yet</text></svg>'
    )


def stacked_columns(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    width: int = 1080,
    height: int = 240,
) -> str:
    """One column per label, the series stacked in order, with a y axis and a legend."""
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    if not labels or not any(totals):
        return _empty(width, height)
    left, right, top, bottom = 40, 8, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max(totals))
    step = plot_w / len(labels)
    bar = min(56.0, max(2.0, step * 0.7))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="chart">']
    for tick in range(5):
        value = top_value * tick / 4
        tick_y = top + plot_h - plot_h * tick / 4
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{tick_y}" y2="{tick_y}"/>'
        )
        parts.append(f'<text class="tick" x="{left - 6}" y="{tick_y + 4}">{_number(value)}</text>')
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar) / 2
        base = float(top + plot_h)
        for n, (name, values) in enumerate(series):
            h = plot_h * values[i] / top_value
            if h > 0:
                parts.append(
                    f'<rect class="series-{n}" x="{x:.1f}" y="{base - h:.1f}" '
                    f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                    f"{_number(values[i])} {escape(name)}</title></rect>"
                )
            base -= h
    every = max(1, math.ceil(len(labels) / 8))
    for i in range(0, len(labels), every):
        x = left + i * step + step / 2
        parts.append(f'<text class="axis" x="{x:.1f}" y="{height - 10}">{escape(labels[i])}</text>')
    legend_x = left
    for n, (name, _) in enumerate(series):
        parts.append(
            f'<rect class="series-{n}" x="{legend_x}" y="4" width="10" height="10" rx="2"/>'
        )
        parts.append(f'<text class="legend" x="{legend_x + 14}" y="13">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(items: Sequence[tuple[str, float]], *, unit: str = "", width: int = 420) -> str:
    """One bar per item, largest first as given, labelled with its value."""
    if not items or not any(value for _, value in items):
        return _empty(width, 120)
    row, label_w, value_w = 26, 120, 90
    height = row * len(items) + 8
    top_value = max(value for _, value in items)
    plot_w = width - label_w - value_w
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="chart">']
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = plot_w * value / top_value if top_value else 0
        parts.append(
            f'<text class="bar-label" x="{label_w - 8}" y="{y + 15}">{escape(label[:18])}</text>'
        )
        parts.append(
            f'<rect class="series-{i % 6}" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" '
            f'height="{row - 8}" rx="3"><title>{escape(label)}: {_number(value)}{unit}</title>'
            "</rect>"
        )
        parts.append(
            f'<text class="bar-value" x="{label_w + w + 6:.1f}" y="{y + 15}">'
            f"{_number(value)}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def donut(parts_in: Sequence[tuple[str, float]], *, size: int = 180) -> str:
    """A ring split by share, the total in the middle, a legend beside it."""
    total = sum(value for _, value in parts_in)
    width = size + 170
    if not total:
        return _empty(width, size)
    ring = 22
    radius = size / 2 - ring / 2 - 2
    cx = cy = size / 2
    circumference = 2 * math.pi * radius
    parts = [f'<svg class="chart" viewBox="0 0 {width} {size}" role="img" aria-label="chart">']
    parts.append(
        f'<circle class="ring" cx="{cx}" cy="{cy}" r="{radius}" stroke-width="{ring}" fill="none"/>'
    )
    start = 0.0
    for n, (name, value) in enumerate(parts_in):
        if value <= 0:
            continue
        length = circumference * value / total
        parts.append(
            f'<circle class="slice series-{n}" cx="{cx}" cy="{cy}" r="{radius}" fill="none" '
            f'stroke-width="{ring}" stroke-dasharray="{length:.2f} {circumference - length:.2f}" '
            f'stroke-dashoffset="{-start:.2f}" transform="rotate(-90 {cx} {cy})">'
            f"<title>{escape(name)}: {_number(value)}</title></circle>"
        )
        start += length
    parts.append(f'<text class="donut-total" x="{cx}" y="{cy + 8}">{_number(total)}</text>')
    for n, (name, value) in enumerate(parts_in):
        y = 30 + n * 24
        parts.append(
            f'<rect class="series-{n}" x="{size + 14}" y="{y - 10}" width="12" height="12" rx="2"/>'
        )
        parts.append(
            f'<text class="legend" x="{size + 32}" y="{y}">{escape(name)} · {_number(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

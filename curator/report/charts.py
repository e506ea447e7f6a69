"""Inline SVG charts for the HTML report: horizontal bars (tags, buckets) and histograms (metrics).

Pure functions from numbers to SVG text; every label is escaped. No script, no external resource.

Example::

    svg = bar_chart([("1girl", 40), ("smile", 12)], total=50)
    svg = histogram([0.1, 0.4, 0.5, 0.9], threshold=0.8, label="blur")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape


def _fmt(value: float) -> str:
    """A short human number: 1234 -> 1234, 0.012345 -> 0.0123, 12345.6 -> 12346."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def bar_chart(
    rows: Sequence[tuple[str, float]],
    total: float | None = None,
    width: int = 900,
    color: str = "var(--accent)",
) -> str:
    """Horizontal bars, one per (label, value), longest first as given. ``total`` adds a percentage to each value."""
    if not rows:
        return '<p class="muted">Nothing to show.</p>'
    row_h, label_w, value_w = 22, 210, 100
    bar_w = width - label_w - value_w
    peak = max(v for _, v in rows) or 1
    height = row_h * len(rows) + 4
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
    ]
    for i, (label, value) in enumerate(rows):
        y = i * row_h + 2
        w = max(1.0, bar_w * value / peak)
        shown = label if len(label) <= 28 else label[:27] + "\u2026"
        pct = f" ({100 * value / total:.0f}%)" if total else ""
        parts.append(
            f"<g><title>{escape(label)}: {_fmt(value)}{pct}</title>"
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="lbl">{escape(shown)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 7}" rx="3" fill="{color}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="val">{_fmt(value)}{pct}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bins(values: Sequence[float], low: float, high: float, count: int) -> list[int]:
    step = (high - low) / count
    counts = [0] * count
    for v in values:
        counts[max(0, min(count - 1, int((v - low) / step)))] += 1
    return counts


def histogram(
    values: Sequence[float], threshold: float | None = None, label: str = "", bins: int = 24, width: int = 360
) -> str:
    """A histogram of ``values`` with min / max ticks, and a dashed line at ``threshold`` when given."""
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return '<p class="muted">No values.</p>'
    height, pad_x, pad_top, pad_bottom = 150, 10, 10, 26
    has_threshold = threshold is not None and math.isfinite(threshold)
    low, high = min(finite), max(finite)
    if threshold is not None and has_threshold:  # widen the range so the threshold line is on the chart
        low, high = min(low, threshold), max(high, threshold)
    if high == low:
        high = low + 1.0
    counts = _bins(finite, low, high, bins)
    plot_w, plot_h = width - 2 * pad_x, height - pad_top - pad_bottom
    peak = max(counts) or 1
    bar = plot_w / bins
    parts = [
        f'<svg class="chart hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
        f"<title>{escape(label)}</title>"
    ]
    for i, c in enumerate(counts):
        if c <= 0:
            continue
        h = plot_h * c / peak
        x = pad_x + i * bar
        lo = low + i * (high - low) / bins
        parts.append(
            f'<rect x="{x + 0.5:.1f}" y="{pad_top + plot_h - h:.1f}" width="{max(1.0, bar - 1):.1f}" height="{h:.1f}" '
            f'fill="var(--accent)"><title>{_fmt(lo)}\u2013{_fmt(lo + (high - low) / bins)}: {c}</title></rect>'
        )
    base_y = pad_top + plot_h
    parts.append(f'<line x1="{pad_x}" y1="{base_y}" x2="{width - pad_x}" y2="{base_y}" class="axis"/>')
    parts.append(f'<text x="{pad_x}" y="{height - 8}" class="val">{_fmt(low)}</text>')
    parts.append(
        f'<text x="{width - pad_x}" y="{height - 8}" text-anchor="end" class="val">{_fmt(high)}</text>'
    )
    if has_threshold and threshold is not None:
        tx = pad_x + plot_w * (threshold - low) / ((high - low) or 1)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{pad_top - 4}" x2="{tx:.1f}" y2="{base_y}" class="threshold"/>'
            f'<text x="{tx + (-4 if tx > width * 0.6 else 4):.1f}" y="{pad_top + 6}" '
            f'text-anchor="{"end" if tx > width * 0.6 else "start"}" class="thr">threshold {_fmt(threshold)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

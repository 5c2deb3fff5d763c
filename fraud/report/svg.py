"""Server-side SVG charts for the report page (fraud/report/page.py): no JavaScript, no network.

Every text that reaches the markup goes through `esc`; numbers are formatted by `num`/`pct`,
which print an em dash for a missing value (the /ab-stats body uses None, never NaN).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 780
LABEL_W = 170
TEXT_W = 250
ROW_H = 26
MISSING = "\u2014"


def esc(value: object) -> str:
    """HTML-escaped text of anything (quotes too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def finite(x: object) -> float | None:
    """`x` as a float if it is a finite number, else None."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def num(x: object, digits: int = 3) -> str:
    v = finite(x)
    if v is None:
        return MISSING
    if v != 0 and (abs(v) < 10 ** -digits or abs(v) >= 1e6):
        return f"{v:.{digits - 1}e}"
    return f"{v:,.{digits}f}" if abs(v) < 1000 else f"{v:,.0f}"


def pct(x: object, digits: int = 1) -> str:
    v = finite(x)
    return MISSING if v is None else f"{100 * v:.{digits}f}%"


@dataclass(frozen=True)
class Row:
    """One line of an interval chart: a point estimate and its interval (either may miss)."""

    label: str
    value: object
    low: object = None
    high: object = None
    text: str = ""
    css: str = "a"


def _scale(lo: float, hi: float) -> tuple[float, float]:
    if hi - lo <= 0:
        return lo - 0.5, hi + 0.5
    return lo, hi


def interval_chart(title: str, rows: Sequence[Row], lo: float, hi: float, *,
                   zero: float | None = None, band: tuple[float, float] | None = None,
                   fmt: str = "num") -> str:
    """A forest plot: one row per estimate, its interval as a bar, optional reference line
    (`zero`) and shaded band (`band`, e.g. an equivalence margin), axis from lo to hi."""
    lo, hi = _scale(lo, hi)
    plot_w = WIDTH - LABEL_W - TEXT_W
    height = ROW_H * len(rows) + 34

    def x(v: float) -> float:
        return LABEL_W + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_w

    tick = pct if fmt == "pct" else num
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    if band is not None:
        parts.append(f'<rect class="band" x="{x(band[0]):.1f}" y="4" '
                     f'width="{x(band[1]) - x(band[0]):.1f}" height="{height - 30}"/>')
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(f'<line class="grid" x1="{x(v):.1f}" x2="{x(v):.1f}" y1="4" '
                     f'y2="{height - 26}"/><text class="tick" x="{x(v):.1f}" '
                     f'y="{height - 10}" text-anchor="middle">{esc(tick(v))}</text>')
    if zero is not None and lo <= zero <= hi:
        parts.append(f'<line class="zero" x1="{x(zero):.1f}" x2="{x(zero):.1f}" y1="4" '
                     f'y2="{height - 26}"/>')
    for i, r in enumerate(rows):
        y = 4 + ROW_H * i + ROW_H / 2
        parts.append(f'<text class="label" x="{LABEL_W - 8}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{esc(r.label)}</text>')
        v, a, b = finite(r.value), finite(r.low), finite(r.high)
        if a is not None and b is not None:
            parts.append(f'<line class="ci {esc(r.css)}" x1="{x(a):.1f}" x2="{x(b):.1f}" '
                         f'y1="{y:.1f}" y2="{y:.1f}"/>')
        if v is not None:
            parts.append(f'<circle class="pt {esc(r.css)}" cx="{x(v):.1f}" cy="{y:.1f}" r="5"/>')
        text = r.text or ("no data yet" if v is None else "")
        parts.append(f'<text class="val" x="{WIDTH - TEXT_W + 8}" y="{y + 4:.1f}">'
                     f'{esc(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, rows: Sequence[tuple[str, Sequence[tuple[float, str]], str]]) -> str:
    """Horizontal stacked bars: (label, [(amount, css class)], text at the right), one scale."""
    plot_w = WIDTH - LABEL_W - TEXT_W
    top = max((sum(max(a, 0.0) for a, _ in segs) for _, segs, _ in rows), default=0.0) or 1.0
    height = ROW_H * len(rows) + 8
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    for i, (label, segs, text) in enumerate(rows):
        y = 4 + ROW_H * i
        parts.append(f'<text class="label" x="{LABEL_W - 8}" y="{y + ROW_H / 2 + 4:.1f}" '
                     f'text-anchor="end">{esc(label)}</text>')
        left = float(LABEL_W)
        for amount, css in segs:
            w = max(amount, 0.0) / top * plot_w
            parts.append(f'<rect class="bar {esc(css)}" x="{left:.1f}" y="{y + 3}" '
                         f'width="{w:.1f}" height="{ROW_H - 6}"/>')
            left += w
        parts.append(f'<text class="val" x="{WIDTH - TEXT_W + 8}" y="{y + ROW_H / 2 + 4:.1f}">'
                     f'{esc(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def span(*values: object, pad: float = 0.1, floor: float = 0.0) -> tuple[float, float]:
    """A symmetric axis around 0 that holds every finite value (at least +-floor)."""
    m = max([abs(v) for v in map(finite, values) if v is not None] + [floor]) or 1.0
    return -m * (1 + pad), m * (1 + pad)

"""Server-side SVG charts over time, and the drift bars, for the report page (fraud/report/page.py).

Like fraud/report/svg.py: no JavaScript, no network, every text through `esc`. A time chart
draws lines (None breaks a line; a lone point is a dot), optional interval bands around them,
a reference line, a shaded horizontal band (an equivalence margin), shaded spans (while the
challenger was rolled back) and events as vertical markers whose tooltip says what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fraud.report.history import Event
from fraud.report.svg import LABEL_W, ROW_H, TEXT_W, WIDTH, esc, finite, num, pct

LEFT, RIGHT, TOP, BOTTOM = 64, 16, 26, 30
HEIGHT = 230
ANCHORS = ("start", "middle", "middle", "middle", "end")  # time ticks: the ends stay inside
CHART_CSS = """
.line{fill:none;stroke-width:2}.line.a{stroke:#3d6fb6}.line.b{stroke:#d9822b}
.line.d{stroke:#4a3378}.area{stroke:none;opacity:.22}.area.a{fill:#3d6fb6}
.area.b{fill:#d9822b}.area.d{fill:#6b4fa3}.dot.a{fill:#234b85}.dot.b{fill:#a85a12}
.dot.d{fill:#4a3378}.rolled{fill:#fbd9d7;opacity:.6}.ev{stroke-width:1.5;stroke-dasharray:3 2}
.ev.rollback,.ev.breach{stroke:#c0392b}.ev.resume{stroke:#13612c}.ev.verdict{stroke:#4a3378}
.ev.period{stroke:#7a5200}.evl{font-size:11px;fill:#4a3378}.key{font-size:12px;fill:#1d2330}
.bar.d{fill:#6b4fa3}.cap{margin:10px 0 0;color:#5b6577}
.thr{stroke:#c0392b;stroke-width:1.5;stroke-dasharray:5 3}.bar.drift{stroke:#c0392b;
stroke-width:2}
"""


@dataclass(frozen=True)
class Line:
    """One series: values per look and, optionally, an interval band (low, high) per look."""

    label: str
    values: Sequence[Any]
    css: str = "a"
    low: Sequence[Any] | None = None
    high: Sequence[Any] | None = None


def clock(t: float, span: float) -> str:
    """A time tick: HH:MM:SS (UTC) within a day, else MM-DD HH:MM."""
    d = datetime.fromtimestamp(t, tz=UTC)
    return d.strftime("%H:%M:%S") if span < 86_400 else d.strftime("%m-%d %H:%M")


def _finite(values: Sequence[Any], n: int) -> list[float | None]:
    """`values` as n floats or None (missing, not finite, or beyond its end)."""
    return [finite(values[i]) if i < len(values) else None for i in range(n)]


def _runs(ok: Sequence[bool]) -> list[list[int]]:
    """Consecutive indices where ok[i] holds, as runs."""
    runs: list[list[int]] = []
    for i, good in enumerate(ok):
        if not good:
            runs.append([])
        elif runs and runs[-1]:
            runs[-1].append(i)
        else:
            runs.append([i])
    return [r for r in runs if r]


def time_chart(title: str, t: Sequence[float], lines: Sequence[Line], lo: float, hi: float, *,
               fmt: str = "num", zero: float | None = None,
               hband: tuple[float, float] | None = None, events: Sequence[Event] = (),
               shade: Sequence[bool] = (), label_events: Sequence[str] = ()) -> str:
    """Lines over time (one point per look at times `t`), y axis from lo to hi."""
    if hi - lo <= 0:
        lo, hi = lo - 0.5, hi + 0.5
    t0, t1 = (min(t), max(t)) if t else (0.0, 1.0)
    if t1 - t0 <= 0:
        t0, t1 = t0 - 1.0, t1 + 1.0
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(v: float) -> float:
        return LEFT + (v - t0) / (t1 - t0) * pw

    def y(v: float) -> float:
        return TOP + (1 - (min(max(v, lo), hi) - lo) / (hi - lo)) * ph

    tick = {"pct": pct, "int": lambda v: f"{v:,.0f}"}.get(fmt, num)
    out = [f'<svg class="chart time" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    for i in range(len(t) - 1):
        if i < len(shade) and shade[i]:
            out.append(f'<rect class="rolled" x="{x(t[i]):.1f}" y="{TOP}" '
                       f'width="{x(t[i + 1]) - x(t[i]):.1f}" height="{ph}"/>')
    if hband is not None:
        out.append(f'<rect class="band" x="{LEFT}" y="{y(hband[1]):.1f}" width="{pw}" '
                   f'height="{y(hband[0]) - y(hband[1]):.1f}"/>')
    for i in range(5):
        v, u = lo + (hi - lo) * i / 4, t0 + (t1 - t0) * i / 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" '
                   f'y2="{y(v):.1f}"/><text class="tick" x="{LEFT - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{esc(tick(v))}</text><text class="tick" '
                   f'x="{x(u):.1f}" y="{HEIGHT - 10}" text-anchor="{ANCHORS[i]}">'
                   f'{esc(clock(u, t1 - t0) if t else "")}</text>')
    if zero is not None and lo <= zero <= hi:
        out.append(f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(zero):.1f}" '
                   f'y2="{y(zero):.1f}"/>')
    for ln in lines:
        css = esc(ln.css)
        if ln.low is not None and ln.high is not None:
            low, high = _finite(ln.low, len(t)), _finite(ln.high, len(t))
            for run in _runs([a is not None and b is not None
                              for a, b in zip(low, high, strict=True)]):
                pts = [(x(t[i]), y(low[i] or 0.0)) for i in run] + \
                      [(x(t[i]), y(high[i] or 0.0)) for i in reversed(run)]
                out.append(f'<polygon class="area {css}" points="'
                           + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        values = _finite(ln.values, len(t))
        for run in _runs([v is not None for v in values]):
            if len(run) > 1:
                out.append(f'<polyline class="line {css}" points="' + " ".join(
                    f"{x(t[i]):.1f},{y(values[i] or 0.0):.1f}" for i in run) + '"/>')
            last = run[-1]
            out.append(f'<circle class="dot {css}" cx="{x(t[last]):.1f}" '
                       f'cy="{y(values[last] or 0.0):.1f}" r="3.5"/>')
    for k, e in enumerate(events):
        if not t0 <= e.t <= t1:
            continue
        out.append(f'<line class="ev {esc(e.kind)}" x1="{x(e.t):.1f}" x2="{x(e.t):.1f}" '
                   f'y1="{TOP}" y2="{TOP + ph}"><title>{esc(e.text)}</title></line>')
        if e.kind in label_events:
            out.append(f'<text class="evl" x="{x(e.t) + 3:.1f}" y="{TOP + 12 + 12 * (k % 3)}">'
                       f'{esc(e.text)}</text>')
    left = LEFT
    for ln in lines:
        out.append(f'<rect class="bar {esc(ln.css)}" x="{left}" y="6" width="12" height="10"/>'
                   f'<text class="key" x="{left + 16}" y="15">{esc(ln.label)}</text>')
        left += 24 + 7 * len(ln.label)
    out.append("</svg>")
    return "".join(out)


def drift_chart(title: str, arms: dict[str, Any]) -> str:
    """PSI per feature (rows), one bar per arm, the threshold as a dashed line; a feature with
    a drift verdict gets an outlined bar. `arms` is /drift's {arm: ArmDrift dict}."""
    names = list(dict.fromkeys(f for a in arms.values() for f in (a.get("features") or {})))
    thr = max([finite(a.get("psi_threshold")) or 0.0 for a in arms.values()] + [0.0])
    psis = [finite(f.get("psi")) for a in arms.values() for f in (a.get("features") or {})
            .values()]
    top = max([v for v in psis if v is not None] + [thr * 1.5, 0.1])
    pw = WIDTH - LABEL_W - TEXT_W
    height = ROW_H * len(names) + 34
    bar_h = (ROW_H - 6) / max(len(arms), 1)

    def x(v: float) -> float:
        return LABEL_W + min(max(v, 0.0), top) / top * pw

    out = [f'<svg class="chart drift" role="img" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
           f'<title>{esc(title)}</title>']
    for i in range(5):
        v = top * i / 4
        out.append(f'<line class="grid" x1="{x(v):.1f}" x2="{x(v):.1f}" y1="4" '
                   f'y2="{height - 26}"/><text class="tick" x="{x(v):.1f}" y="{height - 10}" '
                   f'text-anchor="middle">{esc(num(v, 2))}</text>')
    for r, name in enumerate(names):
        y0 = 4 + ROW_H * r
        out.append(f'<text class="label" x="{LABEL_W - 8}" y="{y0 + ROW_H / 2 + 4:.1f}" '
                   f'text-anchor="end">{esc(name)}</text>')
        texts = []
        for j, (arm, a) in enumerate(arms.items()):
            f = (a.get("features") or {}).get(name) or {}
            v = finite(f.get("psi"))
            texts.append(f"{arm[-1].upper()} {num(v, 3)}" + (" drift" if f.get("drift") else ""))
            if v is None:
                continue
            cls = f"bar {esc(arm[-1])}" + (" drift" if f.get("drift") else "")
            out.append(f'<rect class="{cls}" x="{LABEL_W}" y="{y0 + 3 + j * bar_h:.1f}" '
                       f'width="{x(v) - LABEL_W:.1f}" height="{bar_h - 1:.1f}">'
                       f'<title>{esc(f"{arm} {name}: PSI {num(v, 4)}")}</title></rect>')
        out.append(f'<text class="val" x="{WIDTH - TEXT_W + 8}" y="{y0 + ROW_H / 2 + 4:.1f}">'
                   f'{esc(", ".join(texts))}</text>')
    for j, arm in enumerate(arms):
        out.append(f'<rect class="bar {esc(arm[-1])}" x="{WIDTH - TEXT_W + 40 + 110 * j}" '
                   f'y="{height - 20}" width="12" height="10"/><text class="key" '
                   f'x="{WIDTH - TEXT_W + 56 + 110 * j}" y="{height - 11}">{esc(arm)}</text>')
    if thr:
        out.append(f'<line class="thr" x1="{x(thr):.1f}" x2="{x(thr):.1f}" y1="2" '
                   f'y2="{height - 26}"><title>{esc(f"threshold {num(thr, 2)}")}</title></line>')
    out.append("</svg>")
    return "".join(out)

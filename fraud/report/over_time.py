"""The report page's charts over time and its drift section (fraud/report/page.py puts them in).

Each function takes the `Series` of the stored looks (fraud/report/history.py) and returns
HTML: one or more time charts, or a "no data yet" line when there is no look yet. Every chart
marks rollbacks, resumes, new guardrail breaches, verdict changes and share changes as
vertical lines (hover for what happened) and shades the time the challenger was rolled back.
"""

from __future__ import annotations

from typing import Any

from fraud.report.charts import Line, clock, drift_chart, time_chart
from fraud.report.history import Series
from fraud.report.svg import esc, finite, num, span
from fraud.schema import ROLES

NO_DATA = ("<p class=\"muted nodata\">Over time: no data yet (a look is stored at each "
           "guardrail check).</p>")
MAX_EVENTS = 20


def _col(rows: list[Any], i: int) -> list[Any]:
    return [r[i] if isinstance(r, list) and len(r) > i else None for r in rows]


def _top(*columns: list[Any], floor: float = 0.0) -> float:
    return max([v for c in columns for v in map(finite, c) if v is not None] + [floor])


def _chart(s: Series, title: str, lines: list[Line], lo: float, hi: float,
           **kw: Any) -> str:
    return (f'<p class="cap">{esc(title)}</p>'
            + time_chart(title, s.t, lines, lo, hi, events=s.events, shade=s.rolled_back, **kw))


def _arm_lines(s: Series, key: str, bands: bool) -> list[Line]:
    out = []
    for arm, role in ROLES.items():
        rows = s.arms[arm][key]
        out.append(Line(f"{arm} ({role})", _col(rows, 0), arm[-1],
                        _col(rows, 1) if bands else None, _col(rows, 2) if bands else None))
    return out


def volume_history(s: Series) -> str:
    """Decisions so far per arm, and the flag rate per arm with its interval."""
    if not len(s):
        return NO_DATA
    n = [Line(f"{arm} ({role})", s.arms[arm]["n"], arm[-1]) for arm, role in ROLES.items()]
    flag = _arm_lines(s, "flag_rate", bands=True)
    hi = min(1.0, 1.1 * _top(*(ln.high or [] for ln in flag), *(ln.values for ln in flag),
                             floor=0.05))
    return ("<h3>Over time</h3>"
            + _chart(s, "Decisions so far per arm", n, 0.0, 1.05 * _top(
                *(ln.values for ln in n), floor=1.0), fmt="int")
            + _chart(s, "Flag rate per arm with its interval", flag, 0.0, hi, fmt="pct"))


def metrics_history(s: Series) -> str:
    """Recall and precision per arm over time, each with its interval band."""
    if not len(s):
        return NO_DATA
    return ("<h3>Over time</h3>"
            + _chart(s, "Recall per arm with its interval", _arm_lines(s, "recall", True),
                     0.0, 1.0, fmt="pct")
            + _chart(s, "Precision per arm with its interval",
                     _arm_lines(s, "precision", True), 0.0, 1.0, fmt="pct"))


def _sequence_chart(s: Series, title: str, label: str, values: dict[str, list[Any]],
                    margin: float | None) -> str:
    lo, hi = span(*values["est"], *values["lo"], *values["hi"],
                  floor=max(2 * (margin or 0.0), 0.05))
    line = Line(label, values["est"], "d", values["lo"], values["hi"])
    return _chart(s, title, [line], lo, hi, zero=0.0,
                  hband=(-margin, margin) if margin else None, label_events=("verdict",))


def primary_history(s: Series) -> str:
    """The primary test's confidence sequence (band) and estimate over time, zero line,
    equivalence margin shaded, verdict changes labelled."""
    if not len(s):
        return NO_DATA
    return ("<h3>Over time</h3>" + _sequence_chart(
        s, "Primary test over time: confidence sequence and estimate",
        f"{s.metric or '?'}, B \u2212 A (band: confidence sequence)", s.primary, s.margin))


def paired_history(s: Series) -> str:
    """The paired (shadow) test's confidence sequence over time, when looks had one."""
    if not s.has_paired:
        return ""
    return ("<h3>Over time</h3>" + _sequence_chart(
        s, "Paired test over time: confidence sequence and estimate",
        f"paired {s.paired_metric or '?'}, B \u2212 A", s.paired, None))


def events_list(s: Series) -> str:
    """The latest events, newest first (what the vertical markers are)."""
    if not len(s):
        return NO_DATA
    if not s.events:
        return "<p class=\"muted\">No rollback, breach or verdict change since the first look.</p>"
    span_s = s.t[-1] - s.t[0]
    items = "".join(f"<li><b>{esc(clock(e.t, span_s))}</b> {esc(e.text)}</li>"
                    for e in reversed(s.events[-MAX_EVENTS:]))
    return f"<p>Events (newest first; vertical lines on the charts):</p><ul>{items}</ul>"


def drift_section(drift: dict[str, Any] | None) -> str:
    """PSI per feature per arm against the threshold (GET /drift's arms, or its body; a
    mapping with only "error": why there is no report)."""
    head = "<section><h2>Drift per feature</h2>"
    if isinstance(drift, dict) and set(drift) == {"error"}:
        return (head + f"<p class=\"muted\">No drift report: {esc(drift['error'])}</p>"
                "</section>")
    arms = drift.get("arms", drift) if isinstance(drift, dict) else None
    arms = {str(k): v for k, v in arms.items() if isinstance(v, dict)} \
        if isinstance(arms, dict) else None
    if not arms:
        return (head + "<p class=\"muted\">No drift report: no served model carries a drift "
                "reference (retrain with `make train`).</p></section>")
    notes = []
    for arm, a in arms.items():
        rows, need = a.get("rows"), a.get("min_rows")
        verdict = ("no verdict yet" if not a.get("ready") else
                   "drift" if a.get("drift") else "no drift")
        notes.append(f"{arm} ({a.get('model_tag', '?')}): {rows} live rows of {a.get('window')}"
                     f" (verdict from {need}): {verdict}")
    threshold = max([finite(a.get("psi_threshold")) or 0.0 for a in arms.values()])
    return (head + "<p class=\"muted\">Population stability index of each arm's recent live "
            f"transactions against its model's training data; dashed line: the threshold "
            f"({esc(num(threshold, 2))}); outlined bars have a drift verdict (PSI or KS).</p>"
            + drift_chart("PSI per feature and arm", arms)
            + "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></section>")

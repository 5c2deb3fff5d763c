"""The report page's history: a compact look per guardrail check, and chart series of them.

`look_of` turns one /ab-stats body (fraud/experiment.py `report`) into the few numbers the
charts over time need (a few hundred bytes of JSON, where the body is several kilobytes);
the ledger stores one per experiment per half check interval (fraud/ledger_history.py).
`series` turns the stored looks, oldest first, into aligned lists and events for
fraud/report_charts.py. Both are pure: no I/O, no clock. Numbers are kept to 6 significant
digits; anything missing or not finite is None.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LOOK_VERSION = 1
ARMS = ("model_a", "model_b")
ARM_METRICS = ("flag_rate", "precision", "recall")
MAX_BREACHES = 10
MAX_TEXT = 200
Triple = list[float | None]  # [value, ci_low, ci_high]


def _get(d: Any, *path: str) -> Any:
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else None


def _text(x: Any) -> str | None:
    return None if x is None else str(x)[:MAX_TEXT]


def _triple(m: Any) -> Triple:
    return [_num(_get(m, "value")), _num(_get(m, "ci_low")), _num(_get(m, "ci_high"))]


def look_of(body: dict[str, Any]) -> dict[str, Any]:
    """The compact look of one /ab-stats body (JSON-ready, no NaN)."""
    exp = body.get("experiment") or {}
    p = body.get("primary") or {}
    look: dict[str, Any] = {
        "v": LOOK_VERSION,
        "period": _int(exp.get("period")),
        "share": _num(exp.get("effective_share")),
        "arms": {arm: {"n": _int(_get(body, arm, "total_predictions")),
                       "users": _int(_get(body, arm, "users")),
                       "labelled": _int(_get(body, arm, "labelled")),
                       "errors": _int(_get(body, arm, "errors")),
                       **{key: _triple(_get(body, arm, key)) for key in ARM_METRICS}}
                 for arm in ARMS},
        "primary": {"metric": _text(p.get("metric")), "est": _num(p.get("estimate")),
                    "lo": _num(p.get("ci_low")), "hi": _num(p.get("ci_high")),
                    "p": _num(p.get("p_value")), "verdict": _text(p.get("verdict")),
                    "final": bool(p.get("verdict_final")),
                    "margin": _num(p.get("equivalence_margin"))},
        "guard": {"rolled_back": bool(exp.get("rolled_back")),
                  "reason": _text(exp.get("rollback_reason")),
                  "at": _text(exp.get("rolled_back_at")),
                  "breaches": [str(b)[:MAX_TEXT] for b in
                               (exp.get("guardrail_breaches") or [])[:MAX_BREACHES]]},
    }
    pb = body.get("paired")
    if isinstance(pb, dict):
        test = pb.get("test") or {}
        look["paired"] = {"metric": _text(pb.get("metric")), "est": _num(test.get("estimate")),
                          "lo": _num(test.get("ci_low")), "hi": _num(test.get("ci_high")),
                          "p": _num(test.get("p_value")), "verdict": _text(pb.get("verdict")),
                          "n": _int(pb.get("transactions"))}
    return look


def breach_rule(text: str) -> str:
    """The rule a breach message is about, without its live figures ("challenger flag rate
    0.0412 vs ..." -> "challenger flag rate"): one lasting breach is one event, not one per
    look."""
    return re.split(r"[\d:(]", str(text), maxsplit=1)[0].strip()


def marks_of(look: dict[str, Any]) -> str:
    """What thinning must not lose: a look whose marks differ from the previous look's
    (rollback, verdict, breaches, period) is kept (fraud/ledger_history.py)."""
    return json.dumps([bool(_get(look, "guard", "rolled_back")), _get(look, "primary", "verdict"),
                       sorted({breach_rule(b) for b in _get(look, "guard", "breaches") or []}),
                       look.get("period"),
                       _get(look, "paired", "verdict")], separators=(",", ":"))


@dataclass(frozen=True)
class Event:
    """Something that happened between two looks, drawn as a vertical marker."""

    t: float
    kind: str  # rollback | resume | breach | verdict | period
    text: str


@dataclass
class Series:
    """Aligned per-look lists (one entry per look, None where a look had no value)."""

    t: list[float] = field(default_factory=list)
    arms: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    primary: dict[str, list[Any]] = field(default_factory=dict)
    paired: dict[str, list[Any]] = field(default_factory=dict)
    rolled_back: list[bool] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    metric: str | None = None
    paired_metric: str | None = None
    margin: float | None = None

    def __len__(self) -> int:
        return len(self.t)

    @property
    def has_paired(self) -> bool:
        return any(v is not None for v in self.paired.get("est", []))


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


def series(looks: list[dict[str, Any]]) -> Series:
    """Chart series and events of looks (any order; sorted by `ts`; looks without a finite
    `ts` are skipped)."""
    s = Series(arms={arm: {k: [] for k in ("n", *ARM_METRICS)} for arm in ARMS},
               primary={k: [] for k in ("est", "lo", "hi", "verdict")},
               paired={k: [] for k in ("est", "lo", "hi")})
    ordered = sorted((lk for lk in looks if _num(lk.get("ts")) is not None),
                     key=lambda lk: float(lk["ts"]))
    prev: dict[str, Any] | None = None
    for look in ordered:
        t = float(look["ts"])
        s.t.append(t)
        for arm in ARMS:
            a = _get(look, "arms", arm) or {}
            s.arms[arm]["n"].append(_num(a.get("n")))
            for key in ARM_METRICS:
                trip = a.get(key)
                s.arms[arm][key].append(list(trip) if isinstance(trip, list) and len(trip) == 3
                                        else [None, None, None])
        p = look.get("primary") or {}
        for key in ("est", "lo", "hi"):
            s.primary[key].append(_num(p.get(key)))
        s.primary["verdict"].append(p.get("verdict"))
        s.metric = p.get("metric") or s.metric
        if _num(p.get("margin")) is not None:
            s.margin = _num(p.get("margin"))
        pb = look.get("paired") or {}
        for key in ("est", "lo", "hi"):
            s.paired[key].append(_num(pb.get(key)))
        s.paired_metric = pb.get("metric") or s.paired_metric
        s.rolled_back.append(bool(_get(look, "guard", "rolled_back")))
        s.events.extend(_events(prev, look, t))
        prev = look
    return s


def _events(prev: dict[str, Any] | None, look: dict[str, Any], t: float) -> list[Event]:
    """What changed from `prev` to `look` (at time t)."""
    out: list[Event] = []
    g, pg = look.get("guard") or {}, (prev or {}).get("guard") or {}
    if g.get("rolled_back") and (prev is None or not pg.get("rolled_back")):
        at = _epoch(g.get("at"))
        start = t if at is None or at > t or (prev is not None and at < float(prev["ts"])) \
            else at
        out.append(Event(start, "rollback", f"rolled back: {g.get('reason') or '?'}"))
    elif prev is not None and pg.get("rolled_back") and not g.get("rolled_back"):
        out.append(Event(t, "resume", "resumed: the challenger serves again"))
    seen = {breach_rule(b) for b in pg.get("breaches") or []}
    out.extend(Event(t, "breach", f"guardrail: {b}") for b in g.get("breaches") or []
               if breach_rule(b) not in seen)
    verdict = _get(look, "primary", "verdict")
    before = _get(prev, "primary", "verdict") if prev is not None else "collecting"
    if verdict and verdict != before:
        out.append(Event(t, "verdict", f"verdict: {str(verdict).replace('_', ' ')}"))
    period = look.get("period")
    if prev is not None and period != prev.get("period") and not any(
            e.kind in ("rollback", "resume") for e in out):
        share = _num(look.get("share"))
        out.append(Event(t, "period", f"period {period}: challenger share "
                                      f"{'?' if share is None else f'{100 * share:.0f}%'}"))
    return out

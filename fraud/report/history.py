"""The report page's history: chart series of the stored looks (fraud/experiment/looks.py).

`series` turns the stored looks, oldest first, into aligned lists and events for
fraud/report/charts.py. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fraud.experiment.looks import ARM_METRICS, breach_rule, get_in, number
from fraud.schema import ARMS


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
    ordered = sorted((lk for lk in looks if number(lk.get("ts")) is not None),
                     key=lambda lk: float(lk["ts"]))
    prev: dict[str, Any] | None = None
    for look in ordered:
        t = float(look["ts"])
        s.t.append(t)
        for arm in ARMS:
            a = get_in(look, "arms", arm) or {}
            s.arms[arm]["n"].append(number(a.get("n")))
            for key in ARM_METRICS:
                trip = a.get(key)
                s.arms[arm][key].append(list(trip) if isinstance(trip, list) and len(trip) == 3
                                        else [None, None, None])
        p = look.get("primary") or {}
        for key in ("est", "lo", "hi"):
            s.primary[key].append(number(p.get(key)))
        s.primary["verdict"].append(p.get("verdict"))
        s.metric = p.get("metric") or s.metric
        if number(p.get("margin")) is not None:
            s.margin = number(p.get("margin"))
        pb = look.get("paired") or {}
        for key in ("est", "lo", "hi"):
            s.paired[key].append(number(pb.get(key)))
        s.paired_metric = pb.get("metric") or s.paired_metric
        s.rolled_back.append(bool(get_in(look, "guard", "rolled_back")))
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
    verdict = get_in(look, "primary", "verdict")
    before = get_in(prev, "primary", "verdict") if prev is not None else "collecting"
    if verdict and verdict != before:
        out.append(Event(t, "verdict", f"verdict: {str(verdict).replace('_', ' ')}"))
    period = look.get("period")
    if prev is not None and period != prev.get("period") and not any(
            e.kind in ("rollback", "resume") for e in out):
        share = number(look.get("share"))
        out.append(Event(t, "period", f"period {period}: challenger share "
                                      f"{'?' if share is None else f'{100 * share:.0f}%'}"))
    return out

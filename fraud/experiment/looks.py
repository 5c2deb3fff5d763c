"""The experiment's history: a compact look per guardrail check, and its marks.

`look_of` turns one /ab-stats body (fraud/experiment/live.py `report`) into the few numbers the
report's charts over time need (a few hundred bytes of JSON, where the body is several
kilobytes); the ledger stores one per experiment per half check interval
(fraud/store/history.py), and `marks_of` says when a look changed what it decided. Pure: no
I/O, no clock. Numbers are kept to 6 significant digits; anything missing or not finite is None.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fraud.schema import ARMS

LOOK_VERSION = 1
ARM_METRICS = ("flag_rate", "precision", "recall")
MAX_BREACHES = 10
MAX_TEXT = 200
Triple = list[float | None]  # [value, ci_low, ci_high]


def get_in(d: Any, *path: str) -> Any:
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else None


def _text(x: Any) -> str | None:
    return None if x is None else str(x)[:MAX_TEXT]


def _triple(m: Any) -> Triple:
    return [number(get_in(m, "value")), number(get_in(m, "ci_low")), number(get_in(m, "ci_high"))]


def look_of(body: dict[str, Any]) -> dict[str, Any]:
    """The compact look of one /ab-stats body (JSON-ready, no NaN)."""
    exp = body.get("experiment") or {}
    p = body.get("primary") or {}
    look: dict[str, Any] = {
        "v": LOOK_VERSION,
        "period": _int(exp.get("period")),
        "share": number(exp.get("effective_share")),
        "arms": {arm: {"n": _int(get_in(body, arm, "total_predictions")),
                       "users": _int(get_in(body, arm, "users")),
                       "labelled": _int(get_in(body, arm, "labelled")),
                       "errors": _int(get_in(body, arm, "errors")),
                       **{key: _triple(get_in(body, arm, key)) for key in ARM_METRICS}}
                 for arm in ARMS},
        "primary": {"metric": _text(p.get("metric")), "est": number(p.get("estimate")),
                    "lo": number(p.get("ci_low")), "hi": number(p.get("ci_high")),
                    "p": number(p.get("p_value")), "verdict": _text(p.get("verdict")),
                    "final": bool(p.get("verdict_final")),
                    "margin": number(p.get("equivalence_margin"))},
        "guard": {"rolled_back": bool(exp.get("rolled_back")),
                  "reason": _text(exp.get("rollback_reason")),
                  "at": _text(exp.get("rolled_back_at")),
                  "breaches": [str(b)[:MAX_TEXT] for b in
                               (exp.get("guardrail_breaches") or [])[:MAX_BREACHES]]},
    }
    pb = body.get("paired")
    if isinstance(pb, dict):
        test = pb.get("test") or {}
        look["paired"] = {"metric": _text(pb.get("metric")), "est": number(test.get("estimate")),
                          "lo": number(test.get("ci_low")), "hi": number(test.get("ci_high")),
                          "p": number(test.get("p_value")), "verdict": _text(pb.get("verdict")),
                          "n": _int(pb.get("transactions"))}
    return look


def breach_rule(text: str) -> str:
    """The rule a breach message is about, without its live figures ("challenger flag rate
    0.0412 vs ..." -> "challenger flag rate"): one lasting breach is one event, not one per
    look."""
    return re.split(r"[\d:(]", str(text), maxsplit=1)[0].strip()


def marks_of(look: dict[str, Any]) -> str:
    """What thinning must not lose: a look whose marks differ from the previous look's
    (rollback, verdict, breaches, period) is kept (fraud/store/history.py)."""
    return json.dumps([bool(get_in(look, "guard", "rolled_back")),
                       get_in(look, "primary", "verdict"),
                       sorted({breach_rule(b) for b in get_in(look, "guard", "breaches") or []}),
                       look.get("period"),
                       get_in(look, "paired", "verdict")], separators=(",", ":"))

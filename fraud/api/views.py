"""What GET /ab-stats shows to whom.

The salt lets anyone compute any user's arm, and the thresholds show where the decision edge
is, so both are internals: an `admin` key (or open mode) sees the whole report, every other
caller the same report without them. Everything else (counts, rates, intervals, verdicts)
stays public: the reference's `/ab-stats` clients read it without a key.
"""

from __future__ import annotations

import copy
from typing import Any

from fraud.schema import ARMS

# (path to a mapping, key): removed from the public view when present.
INTERNALS: tuple[tuple[tuple[str, ...], str], ...] = (
    *((((arm,), "threshold")) for arm in ARMS),
    (("experiment",), "salt"),
    (("paired", "same_flag_rate"), "threshold_a"),
    (("paired", "same_flag_rate"), "threshold_b"),
)


def ab_stats_view(report: dict[str, Any], *, admin: bool) -> dict[str, Any]:
    """The /ab-stats body for this caller: all of `report` for admin, else a copy without the
    INTERNALS (the report itself is never changed)."""
    if admin:
        return report
    out = copy.deepcopy(report)
    for path, key in INTERNALS:
        node: Any = out
        for step in path:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key, None)
    return out


def wants_json(accept: str | None) -> bool:
    """True when the Accept header prefers application/json to text/markdown (the default)."""
    best = {"application/json": 0.0, "text/markdown": 0.0}
    specificity = {k: -1 for k in best}
    for part in (accept or "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for target in best:
            kind = target.split("/")[0]
            level = {target: 2, f"{kind}/*": 1, "*/*": 0}.get(media.lower(), -1)
            if level > specificity[target]:
                specificity[target], best[target] = level, q
    return best["application/json"] > best["text/markdown"]

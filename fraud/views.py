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

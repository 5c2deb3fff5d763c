"""The promotion rule: when the evidence allows the challenger to become the champion.

`make promote` (training/promote.py) asks this with the experiment's report (/ab-stats body):

- the split test's verdict is `challenger_better` (customers on each arm, users as the unit), or
- in shadow mode, the paired test's verdict is `challenger_better` (both models on the same
  transactions) and the split test does not say `challenger_worse`;
- and the challenger is not rolled back (a guardrail or an operator stopped it).

`--force` overrides, and is recorded as such.
"""

from __future__ import annotations

from typing import Any


def promotion_refusal(report: dict[str, Any]) -> str | None:
    """Why the challenger may not be promoted on this report, or None if it may."""
    split = report["primary"]["verdict"]
    pair = (report.get("paired") or {}).get("verdict")
    if report["experiment"].get("rolled_back"):
        return (f"the challenger is rolled back ({report['experiment'].get('rollback_reason')});"
                " resume it, or fix what the guardrail found")
    if split == "challenger_better":
        return None
    if pair == "challenger_better" and split != "challenger_worse":
        return None
    shown = f"verdict is {split!r}" + ("" if pair is None else f", paired verdict {pair!r}")
    return (f"{shown}, not 'challenger_better' (p={report['primary']['p_value']}"
            + ("" if pair is None else f", paired p={report['paired']['test']['p_value']}")
            + ")")


def evidence(report: dict[str, Any]) -> str:
    """Which verdict the promotion rests on (recorded with it)."""
    if report["primary"]["verdict"] == "challenger_better":
        return "split"
    return "paired" if (report.get("paired") or {}).get("verdict") == "challenger_better" \
        else "none"

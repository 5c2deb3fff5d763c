"""The promotion rule: when the evidence allows the challenger to become the champion.

`make promote` (training/promote.py) asks this with the experiment's report (/ab-stats body).
The challenger may be promoted on one of two routes, the split test (customers on each arm,
users as the unit) or, in shadow mode, the paired test (both models on the same
transactions). A route stands when ALL of these hold, and every refusal says which failed:

1. the challenger is not rolled back (a guardrail or an operator stopped it);
2. neither test says `label_bias` (declines labelled far less often than approvals, and no
   exploration: a verdict on those labels is not evidence);
3. the route's latched verdict is `challenger_better` (expected_loss: lower is better, the
   verdicts are oriented so);
4. the CURRENT look agrees at the route's share of the error budget: its own verdict is
   `challenger_better` and its own always-valid p-value is <= alpha / 2 when both routes
   exist (alpha otherwise; alpha = statistics.sequential_alpha). The two routes share one
   budget: P(some route promotes an equal challenger) <= alpha/2 + alpha/2 (union bound),
   and one-sided, about half of that. An old latched verdict cannot promote against newer
   data;
5. the other route does not point the other way: its verdict is not `challenger_worse` and
   its current estimate is not below -equivalence_margin;
6. the challenger's legit-decline rate is shown non-inferior: the CS of its ratio to the
   champion's lies below statistics.legit_decline_margin, so recall cannot be won by
   flagging more (vacuous only when the data hold no mature legit decision at all);
7. the paired route only: the label check has run (the block's `labels` has per-arm label
   rates, i.e. `labels.maturity_days` is set and some decisions are mature). The paired test
   judges both models on labels the deciding model's decisions selected; without the check
   an A/A pair under decision-dependent labels is called better (docs/selective-labels.md).
   The split route does not need it: a selection both arms share keeps the sign.

Keys read (all built by fraud.stats.split.primary and fraud.stats.paired.paired):
experiment.{rolled_back, rollback_reason}; primary.{verdict, p_value, alpha,
equivalence_margin, label_bias, labels, this_look.{estimate, p_value, verdict},
legit_decline}; paired (optional).{verdict, label_bias, labels, higher_is_better,
test.{p_value, this_look.{estimate, p_value, verdict}}, legit_decline}.

`--force` overrides, and is recorded as such.
"""

from __future__ import annotations

from typing import Any

BETTER, WORSE = "challenger_better", "challenger_worse"


def _bias_reason(block: dict[str, Any], name: str) -> str:
    rates = ((block.get("labels") or {}).get("per_arm") or {})
    shown = ", ".join(
        f"{arm}: declines labelled {r['declined']['value']:.0%} vs approvals known "
        f"{r['approved']['value']:.0%}" for arm, r in rates.items()
        if (r.get("declined") or {}).get("value") is not None
        and (r.get("approved") or {}).get("value") is not None)
    return (f"label_bias: the {name} verdict rests on labels the decision selected"
            + (f" ({shown})" if shown else "")
            + "; turn exploration on for unbiased estimates")


def _this_look(block: dict[str, Any], name: str) -> dict[str, Any]:
    return (block.get("test") or {}).get("this_look") if name == "paired" \
        else block.get("this_look")  # type: ignore[return-value]


def _oriented(block: dict[str, Any], name: str) -> float | None:
    """The current estimate, signed so that positive favours the challenger."""
    est = (_this_look(block, name) or {}).get("estimate")
    if est is None:
        return None
    return est if block.get("higher_is_better", True) else -est


def _legit_decline(block: dict[str, Any]) -> str | None:
    ld = block.get("legit_decline")
    if ld is None:
        return "the report has no legit-decline check"
    if ld.get("non_inferior"):
        return None
    if ld.get("model_a") is None and ld.get("model_b") is None:
        return None  # no mature legit decision at all: nothing a challenger could decline
    return (f"the challenger's legit-decline rate is not shown within "
            f"{ld.get('margin')}x the champion's (ratio {ld.get('ratio')}, CS upper bound "
            f"{ld.get('ci_high')}): it may win recall by flagging more")


def _label_check(block: dict[str, Any]) -> str | None:
    """Why the paired block's label check has not run, or None if it has."""
    labels = block.get("labels")
    if labels is None:
        return ("paired: the label check has not run (labels.maturity_days is not set), so "
                "a verdict on labels the champion's decisions selected cannot be told from "
                "label bias; set labels.maturity_days to your chargeback window")
    if not labels.get("per_arm"):
        return ("paired: the label check has not run yet: no decision is older than "
                "labels.maturity_days, so label rates by decision are not measured")
    return None


def _route(report: dict[str, Any], name: str, other: str | None) -> str | None:
    """Why route `name` (split | paired) cannot promote, or None if it can."""
    block = report["primary"] if name == "split" else report["paired"]
    if name == "paired" and (why := _label_check(block)) is not None:
        return why
    alpha = float(report["primary"].get("alpha") or 0.05) / (2 if other else 1)
    if block.get("verdict") != BETTER:
        return f"{name} verdict {block.get('verdict')!r}"
    now = _this_look(block, name) or {}
    p_now = now.get("p_value")
    if now.get("verdict") != BETTER or p_now is None or p_now > alpha:
        return (f"{name} verdict is latched 'challenger_better' but the current look does not "
                f"agree at alpha {alpha:g} (its verdict {now.get('verdict')!r}, p={p_now})")
    if other is not None:
        oblock = report["primary"] if other == "split" else report["paired"]
        margin = float(report["primary"].get("equivalence_margin") or 0.05)
        est = _oriented(oblock, other) if oblock.get("higher_is_better", True) else None
        if oblock.get("verdict") == WORSE or (est is not None and est < -margin):
            return (f"the {other} test points the other way (verdict "
                    f"{oblock.get('verdict')!r}, current estimate {est})")
    ld = _legit_decline(block)
    return None if ld is None else f"{name}: {ld}"


def _routes(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    pair = report.get("paired")
    if pair is None:
        return [("split", _route(report, "split", None))]
    return [("split", _route(report, "split", "paired")),
            ("paired", _route(report, "paired", "split"))]


def promotion_refusal(report: dict[str, Any]) -> str | None:
    """Why the challenger may not be promoted on this report, or None if it may."""
    split = report["primary"]["verdict"]
    pair = report.get("paired")
    if report["experiment"].get("rolled_back"):
        return (f"the challenger is rolled back ({report['experiment'].get('rollback_reason')});"
                " resume it, or fix what the guardrail found")
    for name, block in (("split", report["primary"]), ("paired", pair)):
        if block is not None and (block.get("label_bias") or block.get("verdict") ==
                                  "label_bias"):
            return _bias_reason(block, name)
    routes = _routes(report)
    if any(why is None for _, why in routes):
        return None
    shown = f"verdict is {split!r}" + ("" if pair is None else
                                       f", paired verdict {pair.get('verdict')!r}")
    p = report["primary"].get("p_value")
    pp = None if pair is None else (pair.get("test") or {}).get("p_value")
    return (f"{shown}, not promotable (p={p}" + ("" if pair is None else f", paired p={pp}")
            + "): " + "; ".join(why for _, why in routes if why))


def evidence(report: dict[str, Any]) -> str:
    """Which route the promotion rests on (recorded with it): split, paired or none."""
    if report["experiment"].get("rolled_back") or promotion_refusal(report) is not None:
        return "none"
    return next(name for name, why in _routes(report) if why is None)

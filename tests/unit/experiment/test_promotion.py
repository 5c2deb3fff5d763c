"""The promotion rule on constructed reports: each condition refuses alone, with its reason."""

from __future__ import annotations

from typing import Any

import pytest

from fraud.experiment.promotion import evidence, promotion_refusal

NI = {"non_inferior": True, "model_a": 0.01, "model_b": 0.011, "ratio": 1.1, "ci_high": 1.2,
      "margin": 1.25}
NOT_NI = {**NI, "non_inferior": False, "ratio": 1.6, "ci_high": 2.1}
NO_LEGIT = {**NI, "non_inferior": None, "model_a": None, "model_b": None, "ratio": None}
# The label check ran: label rates by decision per arm, no bias (fraud.stats.labels.report).
CHECKED = {"label_bias": False, "per_arm": {"model_a": {"declined": {"value": 0.95},
                                                        "approved": {"value": 1.0}}}}
NOT_MATURE = {"label_bias": False, "per_arm": {}}


def split(verdict: str = "challenger_better", now: str | None = None, p_now: float = 0.001,
          est: float = 0.05, ld: dict[str, Any] | None = NI, bias: bool = False
          ) -> dict[str, Any]:
    out: dict[str, Any] = {"verdict": verdict, "p_value": 0.001, "alpha": 0.05,
                           "equivalence_margin": 0.05, "label_bias": bias,
                           "this_look": {"estimate": est, "p_value": p_now,
                                         "verdict": now or verdict}}
    if ld is not None:
        out["legit_decline"] = ld
    return out


def pair(verdict: str = "challenger_better", now: str | None = None, p_now: float = 0.001,
         est: float = 0.05, ld: dict[str, Any] | None = NI, bias: bool = False,
         higher: bool = True, labels: dict[str, Any] | None = CHECKED) -> dict[str, Any]:
    out: dict[str, Any] = {"verdict": verdict, "label_bias": bias, "higher_is_better": higher,
                           "labels": labels, "test": {"p_value": 0.001, "this_look": {
                               "estimate": est, "p_value": p_now, "verdict": now or verdict}}}
    if ld is not None:
        out["legit_decline"] = ld
    return out


def report(s: dict[str, Any], p: dict[str, Any] | None = None,
           rolled_back: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"primary": s, "experiment": {
        "rolled_back": rolled_back, "rollback_reason": "flag rate" if rolled_back else None}}
    if p is not None:
        out["paired"] = p
    return out


@pytest.mark.parametrize(("r", "basis"), [
    (report(split()), "split"),
    (report(split(p_now=0.04)), "split"),  # one route: the whole alpha
    (report(split("collecting", est=0.01), pair()), "paired"),
    (report(split("no_difference", est=-0.04), pair()), "paired"),  # within the margin
    (report(split(), pair("collecting", est=0.01)), "split"),
    (report(split(ld=NO_LEGIT)), "split"),  # no mature legit decision: nothing to decline
    # expected_loss (lower is better): the paired verdicts are already oriented
    (report(split("collecting", est=0.0), pair(higher=False, est=-3.0)), "paired"),
])
def test_promotable(r: dict[str, Any], basis: str) -> None:
    assert promotion_refusal(r) is None
    assert evidence(r) == basis


@pytest.mark.parametrize(("r", "reason"), [
    (report(split("collecting")), "verdict is 'collecting'"),
    (report(split("challenger_worse")), "verdict is 'challenger_worse'"),
    # two routes share the budget: alpha/2 each, so p = 0.04 now is not enough
    (report(split(p_now=0.04), pair("collecting", est=0.0)),
     "current look does not agree at alpha 0.025"),
    # an old latched verdict against newer data
    (report(split(now="no_difference", p_now=0.6, est=-0.01)), "its verdict 'no_difference'"),
    (report(split("collecting", est=-0.06), pair()), "the split test points the other way"),
    (report(split("challenger_worse", est=-0.02), pair()), "the split test points the other"),
    (report(split(), pair("collecting", est=-0.08)), "the paired test points the other way"),
    (report(split(ld=NOT_NI)), "legit-decline rate is not shown within 1.25x"),
    (report(split(ld=None)), "no legit-decline check"),
    (report(split("collecting"), pair(ld=NOT_NI)), "paired: the challenger's legit-decline"),
    (report(split(bias=True)), "label_bias: the split verdict"),
    (report(split("label_bias")), "label_bias"),
    (report(split(), pair("label_bias", bias=True)), "label_bias: the paired verdict"),
    (report(split(), rolled_back=True), "rolled back (flag rate)"),
    # the paired route needs the label check (issue 21: an A/A pair is called better on
    # labels the champion's decisions selected); the split route stands without it
    (report(split("collecting"), pair(labels=None)),
     "paired: the label check has not run (labels.maturity_days is not set)"),
    (report(split("collecting"), pair(labels=NOT_MATURE)),
     "paired: the label check has not run yet: no decision is older than"),
])
def test_refused_with_its_reason(r: dict[str, Any], reason: str) -> None:
    refusal = promotion_refusal(r)
    assert refusal is not None and reason in refusal, refusal
    assert evidence(r) == "none"


def test_the_split_route_stands_while_the_paired_label_check_has_not_run() -> None:
    r = report(split(), pair("collecting", est=0.01, labels=None))
    assert promotion_refusal(r) is None and evidence(r) == "split"


def test_label_bias_names_the_rates() -> None:
    s = split("label_bias", bias=True)
    s["labels"] = {"per_arm": {"model_a": {"declined": {"value": 0.3},
                                           "approved": {"value": 1.0}}}}
    refusal = promotion_refusal(report(s))
    assert refusal is not None
    assert "model_a: declines labelled 30% vs approvals known 100%" in refusal

"""The split comparison under real label mechanics: label-blind, inverse-propensity, or
`label_bias`.

With no label rows (`labels` None) this is fraud/stats/users.py's primary comparison, as
before. With them:
- exploration off and either arm's declined decisions labelled less often than its approved
  outcomes are known, beyond `label_bias_margin`: the verdict is `label_bias`, never better or
  worse, and the look does not enter the sequence memory (a verdict latched on biased labels
  would outlive the bias);
- exploration on: the test runs on the arms' inverse-propensity estimates (fraud/stats/ipw.py),
  with the same mSPRT and memory;
- otherwise the label-blind comparison stands (the labels are not selected by the decision).

The "worse" rollback asks with `rollback=True`: it reads the label-blind comparison, which
needs only the sign, and the sign survives a selection both arms share (recall measured on
labelled frauds is an increasing function of the true recall when both arms' labels arrive at
the same rates). It refuses only when the arms' declined label rates differ from each other.
"""

from __future__ import annotations

import math
from typing import Any

from fraud.config import StatsSettings
from fraud.stats import harm, ipw
from fraud.stats import labels as lab
from fraud.stats import users as stats
from fraud.stats.aggregates import Periods
from fraud.stats.labels import ArmLabels
from fraud.stats.periods import UserPeriods
from fraud.stats.sequential import Memory, msprt


def _ipw_look(base: dict[str, Any], labels: ArmLabels, s: StatsSettings,
              alpha: float) -> dict[str, Any]:
    """The look on the arms' IPW estimates of the primary metric."""
    out = {**base, "estimator": "inverse propensity", "label_bias": False, "estimate": None,
           "std_error": None, "p_value": None, "ci_low": None, "ci_high": None,
           "verdict": "collecting", "enough": False}
    a, b = labels.model_a, labels.model_b
    if a is None or b is None or a.users == 0 or b.users == 0:
        return out
    out.update(fraud_users_a=a.fraud_users, fraud_users_b=b.fraud_users,
               users_a=a.fraud_users, users_b=b.fraud_users,
               trials_a=int(a.fraud_w.sum()), trials_b=int(b.fraud_w.sum()))
    diff = ipw.split_difference(a, b, s.primary_metric)
    if diff is None or not diff[1] > 0:
        return out
    p, low, high = msprt(diff[0], diff[1], s.mixture_tau, alpha)
    enough = min(a.fraud_users, b.fraud_users) >= s.min_fraud_users_per_arm
    out.update(estimate=diff[0], std_error=math.sqrt(diff[1]), p_value=p, ci_low=low,
               ci_high=high, enough=enough,
               verdict=stats.sequential_verdict(low, high, enough, s.equivalence_margin))
    return out


def look(periods: Periods, s: StatsSettings, alpha: float | None = None, *,
         user_periods: UserPeriods | None = None, labels: ArmLabels | None = None,
         rollback: bool = False) -> dict[str, Any]:
    """This look alone (see the module's docstring for which estimator answers)."""
    alpha = s.sequential_alpha if alpha is None else alpha
    base = {**stats.primary_look(periods, s, alpha, user_periods),
            "estimator": "labelled rows", "label_bias": None}
    if labels is None:
        return base
    margin = s.label_bias_margin
    biased = (lab.arms_differ if rollback else lab.arms_label_bias)(labels, margin)
    if biased:
        return {**base, "label_bias": True, "verdict": "label_bias", "enough": False}
    if labels.exploring and not rollback:
        return _ipw_look(base, labels, s, alpha)
    return {**base, "label_bias": False}


def primary(periods: Periods, s: StatsSettings, memory: Memory, *,
            user_periods: UserPeriods | None = None,
            labels: ArmLabels | None = None) -> tuple[dict[str, Any], Memory]:
    """The /ab-stats `primary` block and the memory after this look.

    Beyond fraud/stats/users.py's keys: `estimator`, `label_bias`, `latched_verdict` (the
    memory's verdict; `verdict` is `label_bias` while the bias holds), `labels` (label rates
    per arm), `ipw` (per arm, with exploration on) and `legit_decline` (the non-inferiority
    test promotion needs)."""
    this = look(periods, s, user_periods=user_periods, labels=labels)
    mem = stats.fold(this, s, memory)
    out = stats.block(this, s, mem)
    out.update(estimator=this["estimator"], label_bias=this["label_bias"],
               latched_verdict=mem.verdict, clustered=this["clustered"])
    if this["label_bias"]:
        out.update(verdict="label_bias", verdict_final=False)
    out["labels"] = None if labels is None else lab.report(labels, s.label_bias_margin,
                                                          s.confidence)
    out["ipw"] = None if labels is None or not labels.exploring else {
        arm: ipw.arm_estimates(u, s.confidence) for arm, u in labels.arms().items()}
    out["legit_decline"] = harm.split_test(periods, s.legit_decline_margin, s.sequential_alpha,
                                           s.legit_decline_tau, labels=labels,
                                           user_periods=user_periods)
    return out, mem

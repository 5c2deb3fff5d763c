"""The A/B statistics of one experiment, with the user as the unit: pure functions, no I/O.

Inputs are per-arm, per-period sums over users (`fraud.stats.aggregates.ArmPeriod`) and the
sequence memory of earlier looks (`fraud.stats.sequential.Memory`); outputs are plain JSON values
(None, never NaN). Methods and references: docs/statistics.md.

- per arm: flag rate, error rate, recall and precision as ratio metrics over users, each with
  a delta-method interval (decision counts are there to read, never to test);
- `sample_ratio`: users at their first exposure in the current allocation period, judged by
  the anytime-valid Beta-binomial Bayes factor (exact under correct assignment);
- `primary`: recall (or precision) of challenger minus champion, stratified by allocation
  period, with the mSPRT always-valid p-value (running minimum) and confidence sequence
  (running intersection); its first verdict is final.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from fraud.config.settings import Metric, StatsSettings
from fraud.schema import CHALLENGER, CHAMPION
from fraud.stats import ratio
from fraud.stats.aggregates import ArmPeriod, Periods
from fraud.stats.periods import UserPeriods, stratified
from fraud.stats.periods import fraud_users as periods_fraud_users
from fraud.stats.ratio import RatioMoments
from fraud.stats.sequential import Memory, msprt, srm_p_value

Verdict = Literal["collecting", "no_difference", "challenger_better", "challenger_worse",
                  "label_bias"]

SEQUENTIAL_METHOD = ("mSPRT normal mixture (Johari et al. 2022) on a per-user ratio metric "
                     "with delta-method variance; p = running minimum, CS = running "
                     "intersection (Howard et al. 2021)")
SRM_METHOD = "users at first exposure; Beta-binomial mixture Bayes factor (Lindon & Malek 2022)"


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def pooled(periods: Periods, arm: str) -> ArmPeriod:
    """One arm over all periods (for reading: a user in two periods counts in both)."""
    total = ArmPeriod()
    for arms in periods.values():
        if arm in arms:
            total = total + arms[arm]
    return total


def arm_metrics(arm: ArmPeriod, confidence: float = 0.95) -> dict[str, Any]:
    """Counts to read, and the four ratio metrics over users with delta-method intervals."""
    z = _z(confidence)
    f1 = (2 * arm.tp / (2 * arm.tp + arm.fp + arm.fn)) if arm.tp + arm.fp + arm.fn else None
    return {
        "users": arm.users, "labelled": arm.labelled, "mature": arm.mature,
        "tp": arm.tp, "fp": arm.fp, "fn": arm.fn, "tn": arm.tn,
        "flag_rate": ratio.summary(arm.flag, z),
        "error_rate": ratio.summary(arm.error, z),
        "precision": ratio.summary(arm.precision, z),
        "recall": ratio.summary(arm.recall, z),
        "f1": f1,
    }


def metric_moments(arm: ArmPeriod, metric: Metric) -> RatioMoments:
    """The moments of `metric` for one arm."""
    if metric == "recall":
        return arm.recall
    if metric == "precision":
        return arm.precision
    raise ValueError(f"unknown metric {metric!r}")


def stratified_difference(periods: Periods, metric: Metric) -> dict[str, Any] | None:
    """Challenger minus champion, stratified by allocation period (weights: metric trials).

    Only periods where both arms have data count; within a period assignment is fixed, so
    the arms are comparable there even when the share changed between periods.
    """
    strata = []
    for arms in periods.values():
        a, b = arms.get(CHAMPION), arms.get(CHALLENGER)
        if a is None or b is None:
            continue
        ma, mb = metric_moments(a, metric), metric_moments(b, metric)
        diff = ratio.difference(ma, mb)
        if diff is not None:
            strata.append((ma.sx + mb.sx, diff, ma, mb))
    if not strata:
        return None
    weight = sum(s[0] for s in strata)
    est = sum(w / weight * d[0] for w, d, _, _ in strata)
    var = sum((w / weight) ** 2 * d[1] for w, d, _, _ in strata)
    users = (sum(s[2].clusters for s in strata), sum(s[3].clusters for s in strata))
    trials = (sum(int(s[2].sx) for s in strata), sum(int(s[3].sx) for s in strata))
    return {"estimate": est, "variance": var, "strata": len(strata), "users": users,
            "trials": trials}


def sequential_verdict(ci_low: float | None, ci_high: float | None, enough: bool,
                       margin: float = 0.05) -> Verdict:
    """The decision rule on a confidence sequence for the effect (higher is better)."""
    if ci_low is None or ci_high is None or not enough:
        return "collecting"
    if ci_low > 0.0:
        return "challenger_better"
    if ci_high < 0.0:
        return "challenger_worse"
    if -margin <= ci_low and ci_high <= margin:
        return "no_difference"
    return "collecting"


def fraud_users(periods: Periods) -> tuple[int, int]:
    """Users with labelled fraud per arm, summed over periods (a user active in two periods
    counts twice here: `UserPeriods` counts them once)."""
    return tuple(sum(arms[arm].recall.clusters for arms in periods.values() if arm in arms)
                 for arm in (CHAMPION, CHALLENGER))  # type: ignore[return-value]


def primary_look(periods: Periods, s: StatsSettings, alpha: float | None = None,
                 user_periods: UserPeriods | None = None) -> dict[str, Any]:
    """This look alone: estimate, std error, p-value, CS and the verdict it would give.

    With `user_periods` (the per-user rows) the variance is clustered by user across
    periods (fraud/stats/periods.py); without, the strata are treated as independent. No
    verdict before `min_fraud_users_per_arm` users with labelled fraud in each arm."""
    alpha = s.sequential_alpha if alpha is None else alpha
    if user_periods is not None:
        diff = stratified(user_periods, s.primary_metric)
        fraud = (periods_fraud_users(user_periods, CHAMPION),
                 periods_fraud_users(user_periods, CHALLENGER))
    else:
        diff = stratified_difference(periods, s.primary_metric)
        fraud = fraud_users(periods)
    out: dict[str, Any] = {"estimate": None, "std_error": None, "p_value": None,
                           "ci_low": None, "ci_high": None, "users_a": 0, "users_b": 0,
                           "trials_a": 0, "trials_b": 0, "strata": 0, "verdict": "collecting",
                           "enough": False, "fraud_users_a": fraud[0],
                           "fraud_users_b": fraud[1],
                           "clustered": "user, across periods" if user_periods is not None
                           else "user, within each period"}
    if diff is None or not math.isfinite(diff["variance"]) or diff["variance"] <= 0:
        return out
    p, low, high = msprt(diff["estimate"], diff["variance"], s.mixture_tau, alpha)
    enough = (min(diff["users"]) >= s.min_users_per_arm
              and min(diff["trials"]) >= s.min_labelled_per_arm
              and min(fraud) >= s.min_fraud_users_per_arm)
    out.update(estimate=diff["estimate"], std_error=math.sqrt(diff["variance"]), p_value=p,
               ci_low=low, ci_high=high, users_a=diff["users"][0], users_b=diff["users"][1],
               trials_a=diff["trials"][0], trials_b=diff["trials"][1], strata=diff["strata"],
               verdict=sequential_verdict(low, high, enough, s.equivalence_margin),
               enough=enough)
    return out


def fold(look: dict[str, Any], s: StatsSettings, memory: Memory) -> Memory:
    """`memory` with this look folded in, if it has enough users and trials (else as is)."""
    if not look["enough"]:
        return memory
    return memory.observe(look["p_value"], look["ci_low"], look["ci_high"],
                          lambda lo, hi: sequential_verdict(lo, hi, True, s.equivalence_margin))


def block(look: dict[str, Any], s: StatsSettings, mem: Memory) -> dict[str, Any]:
    """The /ab-stats `primary` block of one look and the memory after it."""
    return {
        "metric": s.primary_metric, "method": SEQUENTIAL_METHOD,
        "alpha": s.sequential_alpha, "tau": s.mixture_tau,
        "min_users_per_arm": s.min_users_per_arm,
        "min_labelled_per_arm": s.min_labelled_per_arm,
        "min_fraud_users_per_arm": s.min_fraud_users_per_arm,
        "fraud_users_a": look["fraud_users_a"], "fraud_users_b": look["fraud_users_b"],
        "clustered": look["clustered"],
        "equivalence_margin": s.equivalence_margin,
        "estimate": look["estimate"], "std_error": look["std_error"],
        "p_value": mem.p_min if mem.looks else None,
        "ci_low": mem.ci_low, "ci_high": mem.ci_high,
        "this_look": {k: look[k] for k in ("estimate", "p_value", "ci_low", "ci_high",
                                           "verdict")},
        "users_a": look["users_a"], "users_b": look["users_b"],
        "trials_a": look["trials_a"], "trials_b": look["trials_b"],
        "strata": look["strata"], "verdict": mem.verdict, "verdict_final": mem.verdict !=
        "collecting",
    }


def primary(periods: Periods, s: StatsSettings, memory: Memory,
            user_periods: UserPeriods | None = None) -> tuple[dict[str, Any], Memory]:
    """The primary comparison with its memory: (the /ab-stats block, the updated memory).

    Only looks with enough users and trials enter the memory; the verdict is the rule applied
    to the running intersection, and the first one reached is final.
    """
    look = primary_look(periods, s, user_periods=user_periods)
    mem = fold(look, s, memory)
    return block(look, s, mem), mem


def sample_ratio(users_a: int, users_b: int, share_b: float | None, s: StatsSettings,
                 p_min: float = 1.0, alpha: float | None = None) -> dict[str, Any] | None:
    """Users at first exposure in the period vs the share; None when the share is 0 or 1.
    `alpha`: this period's share of srm_alpha (fraud.stats.periods.spent); default all."""
    if share_b is None or not 0.0 < share_b < 1.0:
        return None
    alpha = s.srm_alpha if alpha is None else alpha
    n = users_a + users_b
    p = min(p_min, srm_p_value(users_a, users_b, share_b, s.srm_concentration))
    return {"method": SRM_METHOD, "unit": "users", "expected_share_b": share_b,
            "observed_share_b": users_b / n if n else None, "users_a": users_a,
            "users_b": users_b, "p_value": p, "alpha": alpha,
            "mismatch": p < alpha}

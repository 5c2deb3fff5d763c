"""Paired comparison: both models on the same transactions (shadow mode), users as the unit.

In shadow mode every transaction is decided by its user's arm and scored by the other model
too, so both models' decisions exist for the same transactions. Differences between them are
then free of the between-user noise a split test carries: for recall, only the frauds the two
models treat differently (the discordant ones) move the estimate.

Every metric is a ratio of per-user sums, and a difference of two such ratios over the same
users has the delta-method variance of the linearised per-user terms

    z_u = (num_b,u - R_b den_b,u) / S_b - (num_a,u - R_a den_a,u) / S_a,
    Var(R_b - R_a) ~= k / (k - 1) * sum_u z_u^2,

with k the users contributing (Deng, Knoblich & Lu 2018), so the decisions of one user are never
treated as independent. The test is the same always-valid mSPRT and running-intersection
memory as the split test (fraud/stats/sequential.py), on the configured paired metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from fraud.config import StatsSettings
from fraud.config.settings import PairedMetric
from fraud.stats import harm, ipw
from fraud.stats import labels as lab
from fraud.stats.aggregates import PairedUsers
from fraud.stats.cluster import Ratio, difference, log_ratio, one
from fraud.stats.operating_point import same_flag_rate
from fraud.stats.sequential import Memory, msprt
from fraud.stats.users import sequential_verdict

__all__ = ["Costs", "PairedMetric", "Ratio", "compare", "difference", "log_ratio", "one",
           "paired", "paired_look", "ratios", "same_flag_rate"]
METHOD = ("paired, clustered by user: delta-method variance of the per-user linearised "
          "difference; mSPRT normal mixture with running-intersection memory")


@dataclass(frozen=True)
class Costs:
    """What a decision costs: missed fraud costs its amount; declining a legit transaction
    costs `decline_fixed` plus `decline_share` of its amount."""

    decline_fixed: float = 5.0
    decline_share: float = 0.02


def ratios(u: PairedUsers, metric: str, costs: Costs) -> tuple[Ratio, Ratio]:
    """Model A's and model B's ratio for a metric (expected_loss: per 1,000 mature)."""
    if metric == "recall":
        return Ratio(u.tp_a, u.fraud), Ratio(u.tp_b, u.fraud)
    if metric == "precision":
        return Ratio(u.tp_a, u.tp_a + u.fp_a), Ratio(u.tp_b, u.tp_b + u.fp_b)
    if metric == "amount_recall":
        return Ratio(u.caught_amount_a, u.fraud_amount), Ratio(u.caught_amount_b, u.fraud_amount)
    if metric == "expected_loss":
        def loss(caught: np.ndarray, fp: np.ndarray, fp_amount: np.ndarray) -> np.ndarray:
            missed = u.fraud_amount - caught
            return 1000.0 * (missed + costs.decline_fixed * fp + costs.decline_share * fp_amount)
        return (Ratio(loss(u.caught_amount_a, u.fp_a, u.fp_amount_a), u.mature),
                Ratio(loss(u.caught_amount_b, u.fp_b, u.fp_amount_b), u.mature))
    raise ValueError(f"unknown paired metric {metric!r}")


def compare(u: PairedUsers, metric: str, costs: Costs, z_score: float) -> dict[str, Any]:
    """Both models' values and B - A with an interval, for one metric."""
    a, b = ratios(u, metric, costs)
    clip = metric != "expected_loss"
    out: dict[str, Any] = {"model_a": one(a, z_score, clip), "model_b": one(b, z_score, clip),
                           "difference": None}
    diff = difference(a, b, _floor(u, metric))
    if diff is not None:
        half = z_score * math.sqrt(diff[1])
        out["difference"] = {"value": diff[0], "ci_low": diff[0] - half,
                             "ci_high": diff[0] + half, "std_error": math.sqrt(diff[1])}
    return out


def _floor(u: PairedUsers, metric: str) -> float:
    """For recall, no less than independent pairs would give: the discordant frauds'
    binomial variance (one pseudo-count, so a run of identical decisions is not certainty)."""
    if metric != "recall" or u.fraud.sum() <= 0:
        return 0.0
    n = float(u.fraud.sum())
    discordant = float(np.sum(u.tp_a + u.tp_b - 2 * u.tp_both))
    est = float(np.sum(u.tp_b - u.tp_a)) / n
    return max((discordant + 1.0) / n**2 - est**2 / n, 1.0 / n**2)


def higher_is_better(metric: str) -> bool:
    """expected_loss is a cost: lower is better, and the verdicts are oriented accordingly."""
    return metric != "expected_loss"


def rule(metric: str, margin: float) -> Callable[[float, float], str]:
    """The verdict rule on a CS of B - A, oriented so that `challenger_better` means better."""
    if higher_is_better(metric):
        return lambda lo, hi: sequential_verdict(lo, hi, True, margin)
    return lambda lo, hi: sequential_verdict(-hi, -lo, True, margin)


def _test(out: dict[str, Any], est: float, var: float, enough: bool, s: StatsSettings,
          metric: str, alpha: float) -> dict[str, Any]:
    p, low, high = msprt(est, var, s.mixture_tau, alpha)
    verdict = rule(metric, s.equivalence_margin)(low, high) if enough else "collecting"
    out.update(estimate=est, std_error=math.sqrt(var), p_value=p, ci_low=low, ci_high=high,
               enough=enough, verdict=verdict)
    return out


def _ipw_look(out: dict[str, Any], labels: lab.ArmLabels, s: StatsSettings, metric: str,
              alpha: float) -> dict[str, Any]:
    out.update(estimator="inverse propensity", label_bias=False)
    if metric not in ("recall", "precision"):
        out["reason"] = f"no inverse-propensity estimate of {metric} (no amounts in the rows)"
        return out
    fraud = ipw.fraud_users(labels)
    out.update(users=sum(fraud.values()), fraud_users=sum(fraud.values()),
               frauds=int(sum(float(u.fraud_w.sum()) for u in labels.arms().values())))
    diff = ipw.paired_difference(labels, metric)
    if diff is None or not diff[1] > 0:
        return out
    return _test(out, diff[0], diff[1], out["fraud_users"] >= s.min_fraud_users_per_arm, s,
                 metric, alpha)


def paired_look(u: PairedUsers, s: StatsSettings, metric: PairedMetric, costs: Costs,
                alpha: float | None = None,
                labels: lab.ArmLabels | None = None) -> dict[str, Any]:
    """This look's test of B - A on `metric` (s.paired_metric overrides it): estimate,
    variance, p, CS, enough and the verdict, oriented so that better means better.

    With the label rows: `label_bias` while exploration is off and the declines are labelled
    less than the approvals beyond the margin; with exploration on, the inverse-propensity
    difference within the deciding model's strata (fraud/stats/ipw.py)."""
    alpha = s.sequential_alpha if alpha is None else alpha
    metric = s.paired_metric or metric
    out: dict[str, Any] = {"estimate": None, "std_error": None, "p_value": None,
                           "ci_low": None, "ci_high": None, "enough": False,
                           "users": 0, "frauds": int(u.fraud.sum()),
                           "fraud_users": int(np.count_nonzero(u.fraud)),
                           "verdict": "collecting", "metric": metric,
                           "higher_is_better": higher_is_better(metric),
                           "estimator": "labelled rows", "label_bias": None}
    if labels is not None:
        if lab.arms_label_bias(labels, s.label_bias_margin):
            out.update(label_bias=True, verdict="label_bias")
            return out
        if labels.exploring:
            return _ipw_look(out, labels, s, metric, alpha)
        out["label_bias"] = False
    a, b = ratios(u, metric, costs)
    # a cost has no natural scale: its test is on log(loss_B / loss_A), so tau and the margin
    # read as relative changes (0.1 ~ 10%)
    diff = log_ratio(a, b) if metric == "expected_loss" else difference(a, b, _floor(u, metric))
    out["scale"] = "log ratio" if metric == "expected_loss" else "difference"
    users = int(np.count_nonzero(u.fraud if metric != "precision" else u.tp_a + u.fp_a))
    out["users"] = users
    if diff is None or not diff[1] > 0:
        return out
    enough = (users >= s.min_users_per_arm and out["frauds"] >= s.min_labelled_per_arm
              and out["fraud_users"] >= s.min_fraud_users_per_arm)
    return _test(out, diff[0], diff[1], enough, s, metric, alpha)


def paired(u: PairedUsers, scores: np.ndarray, s: StatsSettings, metric: PairedMetric,
           costs: Costs, memory: Memory,
           labels: lab.ArmLabels | None = None) -> tuple[dict[str, Any], Memory]:
    """The /ab-stats `paired` block and the memory with this look folded in.

    `verdict` is `label_bias` while the label rows say so (the look then stays out of the
    memory; `latched_verdict` keeps the memory's); `legit_decline` is the non-inferiority test
    promotion needs; `test.this_look` carries this look's own verdict."""
    z_score = NormalDist().inv_cdf(0.5 + s.confidence / 2.0)
    look = paired_look(u, s, metric, costs, labels=labels)
    metric = look["metric"]
    mem = memory
    if look["enough"]:
        mem = memory.observe(look["p_value"], look["ci_low"], look["ci_high"],
                             rule(metric, s.equivalence_margin))
    disagree = one(Ratio(u.disagree, u.n), z_score)
    verdict = "label_bias" if look["label_bias"] else mem.verdict
    return {
        "method": METHOD, "metric": metric, "alpha": s.sequential_alpha,
        "higher_is_better": higher_is_better(metric), "estimator": look["estimator"],
        "label_bias": look["label_bias"], "min_fraud_users": s.min_fraud_users_per_arm,
        "fraud_users": look["fraud_users"],
        "transactions": int(u.n.sum()), "users": u.users,
        "labelled": int(u.mature.sum()), "frauds": int(u.fraud.sum()),
        "disagreement_rate": disagree,
        "recall": compare(u, "recall", costs, z_score),
        "precision": compare(u, "precision", costs, z_score),
        "amount_recall": compare(u, "amount_recall", costs, z_score),
        "expected_loss_per_1000": compare(u, "expected_loss", costs, z_score),
        "costs": {"decline_fixed": costs.decline_fixed, "decline_share": costs.decline_share},
        "same_flag_rate": same_flag_rate(scores, s.same_flag_rate_min_frauds, s.confidence),
        "labels": None if labels is None else lab.report(labels, s.label_bias_margin,
                                                         s.confidence),
        "ipw": None if labels is None or not labels.exploring else {
            arm: {"deciding": ipw.arm_estimates(x, s.confidence)}
            for arm, x in labels.arms().items()},
        "legit_decline": harm.paired_test(u, s.legit_decline_margin, s.sequential_alpha,
                                          s.legit_decline_tau),
        "test": {"estimate": look["estimate"], "std_error": look["std_error"],
                 "p_value": mem.p_min if mem.looks else None, "ci_low": mem.ci_low,
                 "ci_high": mem.ci_high, "enough": look["enough"],
                 "this_look": {k: look[k] for k in ("estimate", "p_value", "ci_low", "ci_high",
                                                    "verdict")}},
        "verdict": verdict, "latched_verdict": mem.verdict,
    }, mem

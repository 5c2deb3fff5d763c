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
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from fraud.config import StatsSettings
from fraud.stats.aggregates import PairedUsers
from fraud.stats.sequential import Memory, msprt
from fraud.stats.users import sequential_verdict

PairedMetric = Literal["recall", "precision", "amount_recall"]
METHOD = ("paired, clustered by user: delta-method variance of the per-user linearised "
          "difference; mSPRT normal mixture with running-intersection memory")


@dataclass(frozen=True)
class Costs:
    """What a decision costs: missed fraud costs its amount; declining a legit transaction
    costs `decline_fixed` plus `decline_share` of its amount."""

    decline_fixed: float = 5.0
    decline_share: float = 0.02


@dataclass(frozen=True)
class Ratio:
    """One ratio of per-user sums: numerators and denominators, aligned by user."""

    num: np.ndarray
    den: np.ndarray

    @property
    def value(self) -> float | None:
        s = float(self.den.sum())
        return float(self.num.sum()) / s if s > 0 else None

    def terms(self) -> np.ndarray:
        """The per-user linearised terms (num - R den) / S."""
        r = self.value
        assert r is not None
        return (self.num - r * self.den) / float(self.den.sum())


def _variance(z: np.ndarray, users: np.ndarray) -> float | None:
    k = int(np.count_nonzero(users))
    if k < 2:
        return None
    return float(k / (k - 1) * np.sum(z[users] ** 2))


def one(r: Ratio, z_score: float, clip: bool = True) -> dict[str, Any]:
    """{value, ci_low, ci_high, std_error, users} of one ratio."""
    value = r.value
    out: dict[str, Any] = {"value": value, "ci_low": None, "ci_high": None, "std_error": None,
                           "users": int(np.count_nonzero(r.den))}
    if value is None:
        return out
    var = _variance(r.terms(), r.den > 0)
    if var is None:
        return out
    half = z_score * math.sqrt(var)
    low, high = value - half, value + half
    if clip:
        low, high = max(0.0, low), min(1.0, high)
    out.update(ci_low=low, ci_high=high, std_error=math.sqrt(var))
    return out


def difference(a: Ratio, b: Ratio, floor: float = 0.0) -> tuple[float, float] | None:
    """(R_b - R_a, its variance) over the same users; None while either is undefined."""
    if a.value is None or b.value is None:
        return None
    var = _variance(b.terms() - a.terms(), (a.den > 0) | (b.den > 0))
    if var is None:
        return None
    return b.value - a.value, max(var, floor)


def log_ratio(a: Ratio, b: Ratio) -> tuple[float, float] | None:
    """(log(R_b / R_a), its delta-method variance) over the same users; None if undefined."""
    if not a.value or not b.value:
        return None
    var = _variance(b.terms() / b.value - a.terms() / a.value, (a.den > 0) | (b.den > 0))
    if var is None or var <= 0:
        return None
    return math.log(b.value / a.value), var


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


def same_flag_rate(scores: np.ndarray) -> dict[str, Any] | None:
    """Each model's recall when both flag the champion's live share of transactions.

    `scores` columns: pa, pb, fa (champion's decision), mature, fraud. The challenger's
    threshold is its score quantile at the champion's flag rate; recall on labelled frauds.
    """
    if len(scores) == 0:
        return None
    pa, pb, fa, _, y = scores.T
    rate = float(fa.mean())
    frauds = y > 0
    out: dict[str, Any] = {"flag_rate": rate, "transactions": len(scores),
                           "frauds": int(frauds.sum()), "recall_a": None, "recall_b": None}
    if rate <= 0 or not frauds.any():
        return out
    t_a = float(np.quantile(pa, 1.0 - rate))
    t_b = float(np.quantile(pb, 1.0 - rate))
    out.update(threshold_a=t_a, threshold_b=t_b, recall_a=float(np.mean(pa[frauds] >= t_a)),
               recall_b=float(np.mean(pb[frauds] >= t_b)))
    return out


def paired_look(u: PairedUsers, s: StatsSettings, metric: PairedMetric, costs: Costs,
                alpha: float | None = None) -> dict[str, Any]:
    """This look's test of B - A on `metric`: estimate, variance, p, CS, enough."""
    alpha = s.sequential_alpha if alpha is None else alpha
    a, b = ratios(u, metric, costs)
    diff = difference(a, b, _floor(u, metric))
    users = int(np.count_nonzero(u.fraud if metric != "precision" else u.tp_a + u.fp_a))
    trials = int(u.fraud.sum())
    out: dict[str, Any] = {"estimate": None, "std_error": None, "p_value": None,
                           "ci_low": None, "ci_high": None, "enough": False,
                           "users": users, "frauds": trials, "verdict": "collecting"}
    if diff is None or not diff[1] > 0:
        return out
    p, low, high = msprt(diff[0], diff[1], s.mixture_tau, alpha)
    enough = users >= s.min_users_per_arm and trials >= s.min_labelled_per_arm
    out.update(estimate=diff[0], std_error=math.sqrt(diff[1]), p_value=p, ci_low=low,
               ci_high=high, enough=enough,
               verdict=sequential_verdict(low, high, enough, s.equivalence_margin))
    return out


def paired(u: PairedUsers, scores: np.ndarray, s: StatsSettings, metric: PairedMetric,
           costs: Costs, memory: Memory) -> tuple[dict[str, Any], Memory]:
    """The /ab-stats `paired` block and the memory with this look folded in."""
    z_score = NormalDist().inv_cdf(0.5 + s.confidence / 2.0)
    look = paired_look(u, s, metric, costs)
    mem = memory
    if look["enough"]:
        mem = memory.observe(look["p_value"], look["ci_low"], look["ci_high"],
                             lambda lo, hi: sequential_verdict(lo, hi, True,
                                                               s.equivalence_margin))
    disagree = one(Ratio(u.disagree, u.n), z_score)
    return {
        "method": METHOD, "metric": metric, "alpha": s.sequential_alpha,
        "transactions": int(u.n.sum()), "users": u.users,
        "labelled": int(u.mature.sum()), "frauds": int(u.fraud.sum()),
        "disagreement_rate": disagree,
        "recall": compare(u, "recall", costs, z_score),
        "precision": compare(u, "precision", costs, z_score),
        "amount_recall": compare(u, "amount_recall", costs, z_score),
        "expected_loss_per_1000": compare(u, "expected_loss", costs, z_score),
        "costs": {"decline_fixed": costs.decline_fixed, "decline_share": costs.decline_share},
        "same_flag_rate": same_flag_rate(scores),
        "test": {"estimate": look["estimate"], "std_error": look["std_error"],
                 "p_value": mem.p_min if mem.looks else None, "ci_low": mem.ci_low,
                 "ci_high": mem.ci_high, "enough": look["enough"],
                 "this_look": {k: look[k] for k in ("p_value", "ci_low", "ci_high")}},
        "verdict": mem.verdict,
    }, mem

"""Recall of both models at the champion's flag rate (shadow mode), with a user-clustered
interval.

Two models with different thresholds flag different shares; comparing them at ONE operating
point (the champion's live flag rate) says whether the challenger ranks frauds better. The
challenger's threshold is its score quantile at that rate. Only MATURE rows count (an
immature fraud has had no time to be labelled, so it would read as legit), and nothing is
shown below `min_frauds` mature labelled frauds: the estimate is hidden with the reason.

The interval is the delta method over users (recall is a ratio of per-user sums: caught
frauds / frauds), with the two models' terms paired per user for the difference
(fraud/stats/cluster.py). Threshold noise is ignored: with thousands of rows the quantile is
far more precise than recall on a few hundred frauds. Without a user column every row is
its own cluster (`clustered` False).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from fraud.stats.cluster import Ratio, difference, one


def _per_user(users: np.ndarray, caught: np.ndarray, frauds: np.ndarray) -> Ratio:
    _, inverse = np.unique(users, return_inverse=True)
    return Ratio(np.bincount(inverse, weights=caught), np.bincount(inverse, weights=frauds))


def same_flag_rate(scores: np.ndarray, min_frauds: int = 50,
                   confidence: float = 0.95) -> dict[str, Any] | None:
    """Each model's recall when both flag the champion's share of mature transactions.

    `scores` columns: pa, pb, fa (the champion's decision), mature, fraud, and optionally the
    user (any numeric code). None without rows."""
    if len(scores) == 0:
        return None
    mature = scores[:, 3] > 0
    rows = scores[mature]
    pa, pb, fa, y = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 4]
    users = rows[:, 5] if scores.shape[1] > 5 else np.arange(len(rows), dtype=np.float64)
    frauds = y > 0
    rate = float(fa.mean()) if len(rows) else 0.0
    out: dict[str, Any] = {"flag_rate": rate if len(rows) else None, "transactions": len(rows),
                           "immature": int((~mature).sum()), "frauds": int(frauds.sum()),
                           "min_frauds": min_frauds, "recall_a": None, "recall_b": None,
                           "difference": None, "clustered": scores.shape[1] > 5,
                           "hidden": None}
    if int(frauds.sum()) < min_frauds:
        out["hidden"] = (f"{int(frauds.sum())} mature labelled frauds, fewer than "
                         f"{min_frauds}")
        return out
    if rate <= 0:
        out["hidden"] = "the champion flagged no mature transaction"
        return out
    t_a = float(np.quantile(pa, 1.0 - rate))
    t_b = float(np.quantile(pb, 1.0 - rate))
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    ra = _per_user(users[frauds], (pa[frauds] >= t_a).astype(float), np.ones(frauds.sum()))
    rb = Ratio(_per_user(users[frauds], (pb[frauds] >= t_b).astype(float),
                         np.ones(frauds.sum())).num, ra.den)
    a, b = one(ra, z), one(rb, z)
    out.update(threshold_a=t_a, threshold_b=t_b, recall_a=a["value"], recall_b=b["value"],
               recall_a_ci=[a["ci_low"], a["ci_high"]], recall_b_ci=[b["ci_low"], b["ci_high"]],
               users=a["users"])
    diff = difference(ra, rb)
    if diff is not None:
        half = z * float(np.sqrt(diff[1]))
        out["difference"] = {"value": diff[0], "ci_low": diff[0] - half,
                             "ci_high": diff[0] + half, "std_error": float(np.sqrt(diff[1]))}
    return out

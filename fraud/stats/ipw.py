"""Inverse-propensity (Horvitz-Thompson) estimates from explored decisions, per arm and paired.

Exploration approves a would-be decline with a stored propensity p; its fraud outcome then
arrives as a chargeback like any approval's. Weight w = 1 on model-approved decisions, 1/p on
explored ones, 0 on declined unexplored ones (review labels never enter: the analysts chose
them). Per deciding policy, over mature decisions (fraud/stats/labels.py's rows):

    F = fraud_approved + fraud_explored_w     (all fraud)
    C = fraud_explored_w                      (fraud the deciding model catches)
    recall = C / F;  precision = C / flagged;  legit-decline rate = (flagged - C) / (n - F)

Shadow mode, the other model on the same transactions: C_O = other_fraud_approved +
other_fraud_explored_w, so recall_O - recall_D = (C_O - C) / F: within the deciding model's
strata, its approvals count the frauds only the other catches (weight 1) and its explored
declines the frauds only it catches (weight 1/p). Each is a ratio of per-user sums, so the
user-clustered delta method applies unchanged (Deng, Knoblich & Lu 2018); arms and strata with
the same user ids are one cluster (fraud/stats/cluster.py).

The variance grows like 1/p: at p = 1% an explored fraud counts 100 times. Exploration buys
unbiasedness, not power; the effective sample size (sum w)^2 / sum w^2 says how much.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from fraud.stats.cluster import Ratio, Term, combine, kish, one
from fraud.stats.labels import ArmLabels, LabelUsers

METRICS = ("recall", "precision", "legit_decline_rate")
METHOD = ("inverse-propensity (Horvitz-Thompson) weights on explored declines; delta-method "
          "variance clustered by user")


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def ratio(u: LabelUsers, metric: str, other: bool = False) -> Ratio:
    """The deciding model's (or, `other`, the shadow model's) IPW ratio for `metric`."""
    if other:
        caught = u.other_fraud_approved + u.other_fraud_explored_w
        flagged = u.other_flagged
    else:
        caught, flagged = u.fraud_explored_w, u.flagged
    if metric == "recall":
        return Ratio(caught, u.fraud_w)
    if metric == "precision":
        return Ratio(caught, flagged)
    if metric == "legit_decline_rate":
        return Ratio(flagged - caught, u.n - u.fraud_w)
    raise ValueError(f"no IPW estimate of {metric!r} (the label rows carry no amounts)")


def fraud_ess(u: LabelUsers) -> float | None:
    """Kish's effective number of frauds behind F: approved frauds weigh 1, explored ones
    1/p. Exact when the propensity is constant; otherwise 1/p is taken at its mean over the
    explored decisions (explored_w / explored)."""
    f = float(u.fraud_w.sum())
    explored = float(u.explored.sum())
    inv_p = float(u.explored_w.sum()) / explored if explored > 0 else 0.0
    s2 = float(u.fraud_approved.sum()) + float(u.fraud_explored_w.sum()) * inv_p
    return f * f / s2 if s2 > 0 else None


def arm_estimates(u: LabelUsers, confidence: float = 0.95) -> dict[str, Any]:
    """The deciding model's IPW recall, precision and legit-decline rate, with intervals, the
    effective sample sizes and how much of the flagged set exploration can reach."""
    z = _z(confidence)
    out: dict[str, Any] = {"method": METHOD}
    for metric in METRICS:
        r = ratio(u, metric)
        out[metric] = {**one(r, z, clip=False), "ess_users": kish(r.den)}
    out["recall"]["ess"] = fraud_ess(u)
    flagged = float(u.flagged.sum())
    out.update(total_fraud_w=float(u.fraud_w.sum()), caught_w=float(u.fraud_explored_w.sum()),
               explored=int(u.explored.sum()), flagged=int(flagged),
               coverage=float(u.explored_w.sum()) / flagged if flagged else None)
    return out


def _ids(u: LabelUsers, tag: str) -> np.ndarray:
    """User ids for clustering; positional ones (unique to this arm) when the rows carry none."""
    if u.ids is not None:
        return u.ids
    return np.array([f"{tag}:{i}" for i in range(u.users)], dtype=object)


def mean_propensity(u: LabelUsers) -> float | None:
    """explored / sum(1/p): the propensity, exactly when it is constant."""
    w = float(u.explored_w.sum())
    return float(u.explored.sum()) / w if w > 0 else None


def _floor(events: float, p: float | None, den: float, scale: float = 1.0) -> float:
    """The variance of `events` explored frauds each weighing 1/p, with one pseudo-event:
    (events + 1) / (p den)^2. While no explored fraud has been seen, the delta method says
    "no variance" for a part of the estimate that one explored fraud would move by 1/(p den);
    this floor says so instead (like the paired floor's pseudo-count)."""
    if p is None or den <= 0:
        return 0.0
    return scale * (events + 1.0) / (p * den) ** 2


def split_floor(u: LabelUsers, metric: str) -> float:
    """A floor for one arm's IPW recall or precision variance."""
    r, p = ratio(u, metric), mean_propensity(u)
    if p is None or r.value is None:
        return 0.0
    events = float(u.fraud_explored_w.sum()) * p
    return _floor(events, p, float(r.den.sum()),
                  (1.0 - min(r.value, 1.0)) ** 2 if metric == "recall" else 1.0)


def split_difference(a: LabelUsers, b: LabelUsers, metric: str) -> tuple[float, float, int] | None:
    """(R_b - R_a of the arms' own IPW estimates, variance, clusters): a user seen in both
    arms (a share change moved them) is one cluster; the variance is floored per arm."""
    ids_a, ids_b = (a.ids, b.ids) if a.ids is not None and b.ids is not None else (None, None)
    out = combine([Term(ratio(b, metric), 1.0, ids_b), Term(ratio(a, metric), -1.0, ids_a)])
    if out is None:
        return None
    return out[0], max(out[1], split_floor(a, metric) + split_floor(b, metric)), out[2]


def _paired_parts(labels: ArmLabels, metric: str
                  ) -> list[tuple[str, LabelUsers, Ratio, Ratio, float]]:
    """Per deciding arm with data: (arm, rows, deciding ratio, other ratio, weight)."""
    parts = []
    for arm, u in labels.arms().items():
        d, o = ratio(u, metric), ratio(u, metric, other=True)
        if d.value is not None and o.value is not None:
            parts.append((arm, u, d, o, float(d.den.sum() + o.den.sum())))
    total = sum(p[4] for p in parts)
    return [(arm, u, d, o, w / total) for arm, u, d, o, w in parts]


def paired_terms(labels: ArmLabels, metric: str) -> list[Term]:
    """B - A on the same transactions, in each deciding arm's strata, the arms weighted by
    their denominators (F for recall): A decides -> other - deciding; B decides -> the reverse."""
    terms: list[Term] = []
    for arm, u, d, o, w in _paired_parts(labels, metric):
        sign = 1.0 if arm == "model_a" else -1.0
        ids = _ids(u, arm)
        terms += [Term(o, sign * w, ids), Term(d, -sign * w, ids)]
    return terms


def paired_floor(labels: ArmLabels, metric: str) -> float:
    """The pseudo-event floor of the paired difference: in each deciding arm's explored
    stratum only the frauds the deciding model catches and the other misses move it."""
    total = 0.0
    for _, u, d, _, w in _paired_parts(labels, metric):
        p = mean_propensity(u)
        events = float((u.fraud_explored_w - u.other_fraud_explored_w).sum()) * (p or 0.0)
        total += _floor(max(events, 0.0), p, float(d.den.sum()), w * w)
    return total


def paired_difference(labels: ArmLabels, metric: str) -> tuple[float, float, int] | None:
    """(B - A, its user-clustered variance, clusters) from the IPW rows; None if undefined."""
    terms = paired_terms(labels, metric)
    out = combine(terms) if terms else None
    if out is None:
        return None
    return out[0], max(out[1], paired_floor(labels, metric)), out[2]


def fraud_users(labels: ArmLabels) -> dict[str, int]:
    """Users with labelled fraud an IPW estimate uses, per deciding arm."""
    return {arm: u.fraud_users for arm, u in labels.arms().items()}

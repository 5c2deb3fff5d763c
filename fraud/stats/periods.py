"""Allocation periods: the stratified comparison clustered by user, and alpha spent across
periods.

Every share change starts a period, and the primary comparison is stratified by period
(within a period the assignment is fixed). A user active in two periods (or moved from A to
B by a share increase) is ONE cluster: the variance must add their terms from every stratum
before squaring. The per-period sums (`ArmPeriod`) cannot, since they have lost who is who;
the per-user rows (`UserPeriods`, the ledger's user_stats table) can:

    theta = sum_p w_p (R_b,p - R_a,p),   z_u = sum_p w_p (t_b,p,u - t_a,p,u),
    Var ~= k / (k - 1) sum_u z_u^2        (fraud/stats/cluster.py)

with w_p proportional to n_a,p n_b,p / (n_a,p + n_b,p) (Cochran-Mantel-Haenszel), so the
first period of a ramp (share 0.1, few challenger users) does not dominate.
`python -m simulations.calibration` measures each step on the simulated A/A ramp
(docs/selective-labels.md quotes it).

Alpha spending: a rule judged per period (flag rate, error rate, sample ratio) would restart
its error budget with every share change, so an A/A ramp of three periods could spend it three
times. Period k (the k-th period with data) gets alpha * 6 / (pi^2 k^2); the sum over all
periods is alpha (sum 1/k^2 = pi^2/6), whatever the number of periods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraud.stats.aggregates import ArmPeriod, Periods
from fraud.stats.cluster import Ratio, Term, combine, user_codes

# The ledger's user_stats columns after (period, arm, user_id).
PERIOD_FIELDS: tuple[str, ...] = ("decisions", "flagged", "errors", "labelled", "tp", "fp",
                                  "fn", "tn")
CHAMPION, CHALLENGER = "model_a", "model_b"


@dataclass(frozen=True)
class UserPeriods:
    """One row per (period, arm, user): the ledger's per-user counts (aligned arrays)."""

    period: np.ndarray
    arm: np.ndarray  # "model_a" / "model_b" (a fixed-width str array compares fastest)
    user: np.ndarray  # user ids: from_rows gives their user_codes (any numpy dtype works)
    decisions: np.ndarray
    flagged: np.ndarray
    errors: np.ndarray
    labelled: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    # results computed once per look (the rows never change): `stratified` by metric
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> UserPeriods:
        """From (period, arm, user_id, decisions, flagged, errors, labelled, tp, fp, fn, tn)."""
        cols = np.array([[float(v or 0) for v in r[3:]] for r in rows],
                        dtype=np.float64).reshape(len(rows), len(PERIOD_FIELDS))
        return cls(period=np.array([int(r[0]) for r in rows], dtype=np.int64),
                   arm=np.array([str(r[1]) for r in rows], dtype="<U7"),
                   user=user_codes(r[2] for r in rows),
                   **{name: cols[:, i] for i, name in enumerate(PERIOD_FIELDS)})

    def rows(self, period: int, arm: str) -> np.ndarray:
        return (self.period == period) & (self.arm == arm)

    def arm_periods(self) -> Periods:
        """The per-period sums the ledger's aggregate query gives (for the other rules)."""
        out: Periods = {}
        for p in np.unique(self.period):
            for arm in (CHAMPION, CHALLENGER):
                m = self.rows(int(p), arm)
                if m.any():
                    out.setdefault(int(p), {})[arm] = ArmPeriod.from_users(
                        *(getattr(self, f)[m] for f in ("decisions", "flagged", "errors",
                                                        "labelled", "tp", "fp", "fn", "tn")))
        return out


def metric_xy(up: UserPeriods, mask: np.ndarray, metric: str) -> Ratio:
    """The metric's per-user (numerator, denominator) on the rows in `mask`."""
    if metric == "recall":
        return Ratio(up.tp[mask], up.tp[mask] + up.fn[mask])
    if metric == "precision":
        return Ratio(up.tp[mask], up.tp[mask] + up.fp[mask])
    raise ValueError(f"unknown metric {metric!r}")


def _floor(r: Ratio) -> float:
    """ratio.py's binomial floor p(1-p)/n with p = (y+1)/(n+2)."""
    n, y = float(r.den.sum()), float(r.num.sum())
    p = (y + 1.0) / (n + 2.0)
    return p * (1.0 - p) / n


def weight(n_a: float, n_b: float, cmh: bool = True) -> float:
    """A period's weight, n_a n_b / (n_a + n_b) (Cochran-Mantel-Haenszel): a period served at
    share 0.1 has few challenger trials and gets less say than its total would give it.
    cmh=False: its trials n_a + n_b (the per-period sums' weighting)."""
    if not cmh:
        return n_a + n_b
    return n_a * n_b / (n_a + n_b) if n_a + n_b > 0 else 0.0


def _distinct(ids: np.ndarray) -> int:
    return len(np.unique(ids)) if len(ids) else 0


def stratified(up: UserPeriods, metric: str, *, cmh: bool = True,
               jackknife: bool = True) -> dict[str, Any] | None:
    """Challenger minus champion stratified by period (Cochran-Mantel-Haenszel weights), with
    the variance clustered by user ACROSS periods and arms (delta method or jackknife, the
    larger: fraud/stats/cluster.py); the same keys as fraud.stats.users.stratified_difference,
    each user counted once."""
    key = ("stratified", metric, cmh, jackknife)
    if key not in up.memo:
        up.memo[key] = _stratified(up, metric, cmh, jackknife)
    return up.memo[key]


def _stratified(up: UserPeriods, metric: str, cmh: bool,
                jackknife: bool) -> dict[str, Any] | None:
    is_b = up.arm == CHALLENGER
    strata: list[tuple[Ratio, Ratio, np.ndarray, np.ndarray]] = []
    for p in np.unique(up.period):
        in_p = up.period == p
        ma, mb = in_p & ~is_b, in_p & is_b
        ra, rb = metric_xy(up, ma, metric), metric_xy(up, mb, metric)
        if ra.value is not None and rb.value is not None:
            strata.append((ra, rb, up.user[ma], up.user[mb]))
    if not strata:
        return None
    sizes = [weight(ra.total, rb.total, cmh) for ra, rb, _, _ in strata]
    total = sum(sizes)
    terms: list[Term] = []
    floor = 0.0
    for (ra, rb, ids_a, ids_b), size in zip(strata, sizes, strict=True):
        w = size / total
        terms += [Term(rb, w, ids_b), Term(ra, -w, ids_a)]
        floor += w * w * (_floor(ra) + _floor(rb))
    out = combine(terms, jackknife)
    if out is None:
        return None
    est, var, clusters = out
    trials = (up.tp + (up.fn if metric == "recall" else up.fp)) > 0
    return {"estimate": est, "variance": max(var, floor), "strata": len(strata),
            "users": (_distinct(up.user[~is_b & trials]), _distinct(up.user[is_b & trials])),
            "clusters": clusters,
            "trials": (int(sum(ra.den.sum() for ra, _, _, _ in strata)),
                       int(sum(rb.den.sum() for _, rb, _, _ in strata)))}


def period_rank(periods: Periods, current: int) -> int:
    """k: the current period is the k-th with data (1 when nothing was recorded before)."""
    return 1 + sum(1 for p in periods if p < current)


def spent(alpha: float, rank: int) -> float:
    """The share of `alpha` the rank-th period may spend: alpha 6 / (pi^2 rank^2)."""
    return alpha * 6.0 / (math.pi ** 2 * max(rank, 1) ** 2)


def fraud_users(up: UserPeriods, arm: str) -> int:
    """Distinct users with labelled fraud (tp + fn > 0) in `arm`, whatever the period."""
    return _distinct(up.user[(up.arm == arm) & (up.tp + up.fn > 0)])

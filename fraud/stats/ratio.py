"""Ratio metrics over users, with the delta-method (cluster-robust) variance.

Users are the unit of randomisation, so a metric such as recall is a *ratio of user sums*:
R = sum(y_u) / sum(x_u), with x_u the user's denominator (e.g. their mature fraud decisions)
and y_u the numerator (those the model caught). The decisions of one user are not independent
trials; the delta method (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric
Analytics", KDD) gives

    Var(R) ~= sum_u (y_u - R x_u)^2 / (sum_u x_u)^2 * k / (k - 1)

with k the users that have x_u > 0 (users with x_u = 0 contribute nothing). Everything here is
computed from six running sums per arm (`RatioMoments`), which the ledger keeps in SQL and the
simulation in numpy, so /ab-stats never scans decisions.

The variance is floored at the binomial variance p(1-p)/sum(x) (with p = (y+1)/(x+2)): with
a handful of users the sample variance can be near 0 by chance, and no estimate may claim more
precision than independent trials would give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class RatioMoments:
    """Per-arm sums over users of x, y, x^2, y^2 and xy, and how many users have x > 0."""

    clusters: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    syy: float = 0.0
    sxy: float = 0.0

    @classmethod
    def from_arrays(cls, x: np.ndarray, y: np.ndarray) -> RatioMoments:
        """Moments of per-user denominators `x` and numerators `y` (aligned arrays)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return cls(clusters=int(np.count_nonzero(x)), sx=float(x.sum()), sy=float(y.sum()),
                   sxx=float(x @ x), syy=float(y @ y), sxy=float(x @ y))

    def __add__(self, other: RatioMoments) -> RatioMoments:
        """Pool two disjoint sets of users."""
        return RatioMoments(self.clusters + other.clusters, self.sx + other.sx,
                            self.sy + other.sy, self.sxx + other.sxx, self.syy + other.syy,
                            self.sxy + other.sxy)


@dataclass(frozen=True, slots=True)
class RatioEstimate:
    """A ratio metric of one arm: its value, delta-method variance (None with < 2 users)."""

    value: float | None
    variance: float | None
    clusters: int
    denominator: float

    @property
    def std_error(self) -> float | None:
        return None if self.variance is None else math.sqrt(self.variance)


def estimate(m: RatioMoments) -> RatioEstimate:
    """R = sy/sx and its cluster-robust variance; None values when no user has x > 0."""
    if m.sx <= 0 or m.clusters == 0:
        return RatioEstimate(None, None, m.clusters, m.sx)
    r = m.sy / m.sx
    k = m.clusters
    if k < 2:  # one user: a value, but no variance between users to estimate
        return RatioEstimate(r, None, k, m.sx)
    residual = max(m.syy - 2.0 * r * m.sxy + r * r * m.sxx, 0.0)
    delta = residual / (m.sx * m.sx) * (k / (k - 1))
    p = (m.sy + 1.0) / (m.sx + 2.0)
    floor = p * (1.0 - p) / m.sx
    return RatioEstimate(r, max(delta, floor), k, m.sx)


def summary(m: RatioMoments, z: float) -> dict[str, Any]:
    """{value, ci_low, ci_high, std_error, users, n} with a normal interval clipped to [0, 1]."""
    e = estimate(m)
    if e.value is None or e.variance is None:
        return {"value": e.value, "ci_low": None, "ci_high": None, "std_error": None,
                "users": e.clusters, "n": int(m.sx)}
    half = z * math.sqrt(e.variance)
    return {"value": e.value, "ci_low": max(0.0, e.value - half),
            "ci_high": min(1.0, e.value + half), "std_error": math.sqrt(e.variance),
            "users": e.clusters, "n": int(m.sx)}


def difference(a: RatioMoments, b: RatioMoments,
               scale_a: float = 1.0) -> tuple[float, float] | None:
    """(R_b - scale_a * R_a, its variance), or None while either arm has no data."""
    ea, eb = estimate(a), estimate(b)
    if ea.value is None or eb.value is None or ea.variance is None or eb.variance is None:
        return None
    return eb.value - scale_a * ea.value, eb.variance + scale_a * scale_a * ea.variance

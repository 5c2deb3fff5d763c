"""Ratios of per-user sums and their delta-method variance, clustered by user.

Every metric here is R = sum_u num_u / sum_u den_u. Its linearised per-user term is
(num_u - R den_u) / sum(den), and the variance of any linear combination sum_j c_j R_j is

    Var ~= k / (k - 1) * sum_u (sum_j c_j term_j,u)^2,

k the users contributing (Deng, Knoblich & Lu 2018). The sum over j is taken per USER: a user
who appears in two ratios (both models on the same transactions, two arms after a share change,
two allocation periods) is one cluster, so their terms add before squaring. `combine` does that
from user ids; `difference` and `log_ratio` are the shadow-mode special cases where both ratios
share the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Ratio:
    """One ratio of per-user sums: numerators and denominators, aligned by user."""

    num: np.ndarray
    den: np.ndarray

    @cached_property
    def total(self) -> float:
        return float(self.den.sum())

    @cached_property
    def value(self) -> float | None:
        s = self.total
        return float(self.num.sum()) / s if s > 0 else None

    def terms(self) -> np.ndarray:
        """The per-user linearised terms (num - R den) / S."""
        r = self.value
        assert r is not None
        return (self.num - r * self.den) / self.total

    def leave_one_out(self) -> np.ndarray:
        """Per row, R without that row minus R: the jackknife's pseudo-changes. A row that
        holds the whole denominator gets its linear term instead."""
        r = self.value
        assert r is not None
        rest = self.total - self.den
        safe = np.where(rest > 0, rest, 1.0)
        out = (float(self.num.sum()) - self.num) / safe - r
        return np.where(rest > 0, out, self.terms())

    def active(self) -> np.ndarray:
        """Users who contribute (a denominator or a numerator)."""
        return (self.den != 0) | (self.num != 0)


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


def user_codes(user_ids: Iterable[Any]) -> np.ndarray:
    """64-bit codes of user ids for clustering: equal ids, equal codes within this process
    (Python's str hash). Clustering 100k+ users on int64 codes is ~10x faster than on strings;
    two users share a code with probability ~ users^2 / 2^65."""
    return np.fromiter((hash(str(u)) for u in user_ids), dtype=np.int64)


@dataclass(frozen=True)
class Term:
    """c * R in a linear combination; `ids` name the users of R's rows (None: users of this
    term are distinct from every other term's)."""

    ratio: Ratio
    coef: float = 1.0
    ids: np.ndarray | None = None


def _codes(terms: Sequence[Term]) -> list[np.ndarray]:
    """Integer cluster codes per term: equal ids share a code across terms."""
    keyed = [t.ids for t in terms if t.ids is not None]
    codes: list[np.ndarray] = []
    inverse: np.ndarray = np.zeros(0, dtype=np.int64)
    nxt = 0
    if keyed:
        if len({k.dtype.kind for k in keyed}) > 1:
            keyed = [k.astype(str) for k in keyed]
        uniq, inverse = np.unique(np.concatenate(keyed), return_inverse=True)
        nxt = len(uniq)
    at = 0
    for t in terms:
        size = len(t.ratio.num)
        if t.ids is not None:
            codes.append(inverse[at:at + size])
            at += size
        else:
            codes.append(np.arange(nxt, nxt + size))
            nxt += size
    return codes


def combine(terms: Sequence[Term], jackknife: bool = True) -> tuple[float, float, int] | None:
    """(sum c R, its variance clustered by user, clusters); None while a ratio is undefined or
    fewer than 2 users contribute.

    The variance is the larger of the delta method's and the delete-one-user jackknife's,
    (k - 1)/k sum_u (D_u - mean D)^2 with D_u the change of sum c R when user u's rows leave
    every ratio. They agree when no user weighs much; when a few heavy users dominate (heavy-
    tailed activity, fraud on a few cards, explored frauds weighing 1/p) the delta method,
    estimated from those same users, is too small and the jackknife is not."""
    values = [t.ratio.value for t in terms]
    if not terms or any(v is None for v in values):
        return None
    codes = _codes(terms)
    size = max((int(c.max()) + 1 for c in codes if len(c)), default=0)
    z = np.zeros(size)
    jack = np.zeros(size)
    active = np.zeros(size, dtype=bool)
    for t, c in zip(terms, codes, strict=True):
        z += np.bincount(c, weights=t.coef * t.ratio.terms(), minlength=size)
        jack += np.bincount(c, weights=t.coef * t.ratio.leave_one_out(), minlength=size)
        active[c[t.ratio.active()]] = True
    k = int(active.sum())
    if k < 2:
        return None
    estimate = float(sum(t.coef * v for t, v in zip(terms, values, strict=True)))  # type: ignore[misc]
    delta = float(k / (k - 1) * np.sum(z[active] ** 2))
    if not jackknife:  # the delta method alone (kept for the calibration check)
        return estimate, delta, k
    d = jack[active]
    return estimate, max(delta, (k - 1) / k * float(np.sum((d - d.mean()) ** 2))), k


def log_ratio_clustered(a: Ratio, b: Ratio, ids_a: np.ndarray | None = None,
                        ids_b: np.ndarray | None = None) -> tuple[float, float] | None:
    """(log(R_b / R_a), variance) when a and b are over possibly overlapping users (two arms):
    the linearised terms are divided by each rate and added per user."""
    if not a.value or not b.value or a.value <= 0 or b.value <= 0:
        return None
    out = combine([Term(b, 1.0 / b.value, ids_b), Term(a, -1.0 / a.value, ids_a)])
    if out is None or out[1] <= 0:
        return None
    return math.log(b.value / a.value), out[1]


def kish(weights: np.ndarray) -> float | None:
    """Kish's effective sample size (sum w)^2 / sum w^2 of nonnegative weights."""
    s2 = float(np.sum(weights ** 2))
    return float(weights.sum()) ** 2 / s2 if s2 > 0 else None

"""Always-valid tests: the normal-mixture mSPRT, the sequential sample-ratio test, and memory.

- `msprt`: for an estimate theta_hat ~ N(theta, V) (V from the delta method over users), the
  normal-mixture likelihood ratio against theta0 with mixing prior N(theta0, tau^2)
  (Robbins 1970; Johari, Koomen, Pekelis & Walsh 2017/2022), its always-valid p-value and the
  confidence sequence {theta0 : Lambda(theta0) < 1/alpha} (the normal-mixture boundary of
  Howard, Ramdas, McAuliffe & Sekhon 2021, eq. (14)).
- `srm_log_bayes_factor`: the sample-ratio test on *users* at their first exposure, as the
  Dirichlet(-Beta)-multinomial mixture of Lindon & Malek (2022), "Anytime-valid inference for
  multinomial count data" (NeurIPS). Under a correct assignment each new user is an independent
  Bernoulli(share) draw, so the Bayes factor is a nonnegative martingale and Ville's inequality
  makes P(ever BF >= 1/alpha) <= alpha exactly, at any number of looks.
- `Memory`: what makes "always valid" hold across looks: the running minimum p-value, the
  running intersection of confidence sequences and the first verdict reached, which is final.
  `merge` is commutative, so workers that looked at different times combine without order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


def msprt(estimate: float, variance: float, tau: float, alpha: float,
          theta0: float = 0.0) -> tuple[float, float, float]:
    """(always-valid p-value against theta0, CS low, CS high) at level 1 - alpha."""
    if variance <= 0 or tau <= 0 or not 0 < alpha < 1:
        raise ValueError(f"need variance > 0, tau > 0, 0 < alpha < 1; got {variance}, {tau}, "
                         f"{alpha}")
    v, t2 = variance, tau * tau
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * (estimate - theta0) ** 2 / (
        2.0 * v * (v + t2))
    p = 1.0 if log_lambda <= 0 else math.exp(-log_lambda)
    half = math.sqrt(v * (v + t2) / t2 * (math.log((v + t2) / v) - 2.0 * math.log(alpha)))
    return p, estimate - half, estimate + half


def srm_log_bayes_factor(n_a: int, n_b: int, share_b: float, concentration: float) -> float:
    """log BF of "the split is not share_b" vs "it is", Beta(k(1-s), ks) prior on the split."""
    if not 0 < share_b < 1 or concentration <= 0:
        raise ValueError(f"need 0 < share_b < 1 and concentration > 0, got {share_b}, "
                         f"{concentration}")
    a0, b0 = concentration * (1.0 - share_b), concentration * share_b

    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    return (log_beta(a0 + n_a, b0 + n_b) - log_beta(a0, b0)
            - n_a * math.log(1.0 - share_b) - n_b * math.log(share_b))


def srm_p_value(n_a: int, n_b: int, share_b: float, concentration: float) -> float:
    """The anytime-valid p-value min(1, 1/BF) of the current counts."""
    return min(1.0, math.exp(-srm_log_bayes_factor(n_a, n_b, share_b, concentration)))


def _intersect(low: float | None, high: float | None, other_low: float | None,
               other_high: float | None) -> tuple[float | None, float | None]:
    """The intersection of two intervals (None = unbounded); their hull if disjoint (the
    model's assumptions failed somewhere: keep the wider, not either one arbitrarily)."""
    lows = [x for x in (low, other_low) if x is not None]
    highs = [x for x in (high, other_high) if x is not None]
    lo, hi = (max(lows) if lows else None), (min(highs) if highs else None)
    if lo is not None and hi is not None and lo > hi:
        return min(lows), max(highs)
    return lo, hi


@dataclass(frozen=True)
class Memory:
    """Running minimum p, running CS intersection and the final verdict of one sequence."""

    p_min: float = 1.0
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: str = "collecting"
    verdict_look: int | None = None  # the look at which the verdict was reached
    looks: int = 0

    def observe(self, p: float, ci_low: float, ci_high: float,
                rule: Callable[[float, float], str]) -> Memory:
        """This look folded in: min p, intersected CS, and the verdict `rule` gives on the
        intersection, unless one was reached before (it is final)."""
        low, high = _intersect(self.ci_low, self.ci_high, ci_low, ci_high)
        assert low is not None and high is not None
        looks = self.looks + 1
        if self.verdict != "collecting":
            return replace(self, p_min=min(self.p_min, p), ci_low=low, ci_high=high,
                           looks=looks)
        verdict = rule(low, high)
        return Memory(p_min=min(self.p_min, p), ci_low=low, ci_high=high, verdict=verdict,
                      verdict_look=None if verdict == "collecting" else looks, looks=looks)

    def merge(self, other: Memory) -> Memory:
        """Combine two workers' memories of the same sequence (commutative, idempotent)."""
        low, high = _intersect(self.ci_low, self.ci_high, other.ci_low, other.ci_high)
        first = min((m for m in (self, other) if m.verdict != "collecting"),
                    key=lambda m: (m.verdict_look or 0, m.verdict), default=None)
        return Memory(p_min=min(self.p_min, other.p_min), ci_low=low, ci_high=high,
                      verdict=first.verdict if first else "collecting",
                      verdict_look=first.verdict_look if first else None,
                      looks=max(self.looks, other.looks))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Memory:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (value or {}).items() if k in names})

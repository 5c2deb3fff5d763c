"""A/B experiment statistics for /ab-stats: pure functions of per-arm counts, no I/O.

Methods and references are in docs/statistics.md. Every public function returns plain Python
values (float, int, bool, str, None, dict) so the result serialises with
``json.dumps(..., allow_nan=False)``; undefined quantities are None, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as _sps

CHAMPION = "model_a"
CHALLENGER = "model_b"

Verdict = Literal["collecting", "no_difference", "challenger_better", "challenger_worse"]
Metric = Literal["recall", "precision"]

SEQUENTIAL_METHOD = "mSPRT normal mixture (Johari et al. 2017), always-valid"


@dataclass(frozen=True)
class ArmCounts:
    """Counts for one arm: all decisions, flagged ones, and the labelled confusion matrix."""

    total: int
    flagged: int
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __post_init__(self) -> None:
        for name in ("total", "flagged", "tp", "fp", "fn", "tn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ArmCounts.{name} must be a non-negative int, got {value!r}")
        if self.flagged > self.total:
            raise ValueError(f"ArmCounts.flagged ({self.flagged}) > total ({self.total})")

    @property
    def labelled(self) -> int:
        """Decisions with a ground-truth label (tp + fp + fn + tn)."""
        return self.tp + self.fp + self.fn + self.tn


class StatsSettings(BaseModel):
    """Knobs for the experiment statistics; the defaults are the documented ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confidence: float = Field(0.95, gt=0.0, lt=1.0,
                              description="Level of the per-arm Wilson/F1 intervals.")
    srm_alpha: float = Field(0.001, gt=0.0, lt=1.0,
                             description="Sample-ratio mismatch is flagged when p < srm_alpha.")
    sequential_alpha: float = Field(0.05, gt=0.0, lt=1.0,
                                    description="Error rate of the always-valid primary test.")
    mixture_tau: float = Field(0.1, gt=0.0,
                               description="SD of the N(0, tau^2) mixing prior on p_b - p_a.")
    min_labelled_per_arm: int = Field(30, ge=1,
                                      description="Trials per arm before any verdict is given.")
    equivalence_margin: float = Field(0.05, gt=0.0, lt=1.0,
                                      description="|p_b - p_a| within this is 'no_difference'.")
    primary_metric: Metric = Field("recall", description="Metric of the primary comparison.")


# ---------------------------------------------------------------------------------------------
# helpers


def _finite(x: float | None) -> float | None:
    """A plain float, or None for None/NaN/inf (keeps output JSON-clean)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def _z(confidence: float) -> float:
    return float(_sps.norm.ppf(0.5 + confidence / 2.0))


# ---------------------------------------------------------------------------------------------
# per-arm point estimates and intervals


def wilson_interval(successes: int, trials: int,
                    confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; None when trials == 0."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return None
    z = _z(confidence)
    n, p = float(trials), successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low, high = _clip01(centre - half), _clip01(centre + half)
    # Exact at the boundaries (the formula gives 0/1 there up to rounding).
    if successes == 0:
        low = 0.0
    if successes == trials:
        high = 1.0
    return low, high


def proportion_summary(successes: int, trials: int, confidence: float = 0.95) -> dict[str, Any]:
    """{value, ci_low, ci_high, n} for successes/trials with a Wilson interval (None if n=0)."""
    ci = wilson_interval(successes, trials, confidence)
    if ci is None:
        return {"value": None, "ci_low": None, "ci_high": None, "n": trials}
    return {"value": successes / trials, "ci_low": ci[0], "ci_high": ci[1], "n": trials}


def _jaccard_to_f1(j: float) -> float:
    return 2.0 * j / (1.0 + j)


def f1_summary(tp: int, fp: int, fn: int, confidence: float = 0.95) -> dict[str, Any]:
    """F1 with a CI: Wilson on J = tp/(tp+fp+fn), mapped by the monotone F1 = 2J/(1+J)."""
    m = tp + fp + fn
    ci = wilson_interval(tp, m, confidence)
    if ci is None:
        return {"value": None, "ci_low": None, "ci_high": None, "n": m}
    return {
        "value": 2.0 * tp / (2.0 * tp + fp + fn),
        "ci_low": _jaccard_to_f1(ci[0]),
        "ci_high": _jaccard_to_f1(ci[1]),
        "n": m,
    }


def arm_metrics(arm: ArmCounts, confidence: float = 0.95) -> dict[str, Any]:
    """Precision, recall and F1 (each with a CI) plus label counts for one arm."""
    return {
        "labelled": arm.labelled,
        "labelled_fraud": arm.tp + arm.fn,
        "labelled_flagged": arm.tp + arm.fp,
        "tp": arm.tp,
        "fp": arm.fp,
        "fn": arm.fn,
        "tn": arm.tn,
        "precision": proportion_summary(arm.tp, arm.tp + arm.fp, confidence),
        "recall": proportion_summary(arm.tp, arm.tp + arm.fn, confidence),
        "f1": f1_summary(arm.tp, arm.fp, arm.fn, confidence),
    }


# ---------------------------------------------------------------------------------------------
# the reference's flag-rate test and the sample-ratio check


def flag_rate_chi2(flagged_a: int, total_a: int, flagged_b: int,
                   total_b: int) -> dict[str, float | None]:
    """chi2_contingency (scipy defaults: Yates-corrected for 2x2) on flagged vs not, per arm."""
    table = [[flagged_a, total_a - flagged_a], [flagged_b, total_b - flagged_b]]
    if any(c < 0 for row in table for c in row):
        raise ValueError(f"flagged must be within 0..total, got {table}")
    rows = [sum(r) for r in table]
    cols = [table[0][j] + table[1][j] for j in range(2)]
    if 0 in rows or 0 in cols:  # scipy raises on a zero expected frequency
        return {"chi2": None, "p_value": None}
    res = _sps.chi2_contingency(table)
    return {"chi2": _finite(res.statistic), "p_value": _finite(res.pvalue)}


def sample_ratio_check(n_a: int, n_b: int, share_b: float,
                       alpha: float = 0.001) -> dict[str, Any]:
    """Chi-square goodness of fit of (n_a, n_b) to shares (1 - share_b, share_b); SRM if p<alpha."""
    if not 0.0 < share_b < 1.0:
        raise ValueError(f"share_b must be in (0, 1), got {share_b}")
    if n_a < 0 or n_b < 0:
        raise ValueError(f"counts must be non-negative, got {n_a}, {n_b}")
    n = n_a + n_b
    out: dict[str, Any] = {
        "expected_share_b": float(share_b),
        "observed_share_b": None,
        "n_a": n_a,
        "n_b": n_b,
        "chi2": None,
        "p_value": None,
        "alpha": float(alpha),
        "mismatch": False,
    }
    if n == 0:
        return out
    res = _sps.chisquare([n_a, n_b], f_exp=[n * (1.0 - share_b), n * share_b])
    p = _finite(res.pvalue)
    out.update(observed_share_b=n_b / n, chi2=_finite(res.statistic), p_value=p,
               mismatch=p is not None and p < alpha)
    return out


# ---------------------------------------------------------------------------------------------
# the primary, always-valid comparison


def _variance_term(successes: int, trials: int) -> float:
    # Plug-in Bernoulli variance / n, with the (x+1)/(n+2) estimate so that it is never 0
    # when an arm is at 0% or 100% (a zero variance would make the test certain).
    p = (successes + 1.0) / (trials + 2.0)
    return p * (1.0 - p) / trials


def msprt_two_proportions(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                          tau: float = 0.1, alpha: float = 0.05,
                          theta0: float = 0.0) -> dict[str, float | None]:
    """Normal-mixture mSPRT for theta = p_b - p_a: estimate, always-valid p and CS at 1-alpha."""
    for x, n in ((successes_a, trials_a), (successes_b, trials_b)):
        if n < 0 or x < 0 or x > n:
            raise ValueError(f"need 0 <= successes <= trials, got {x}/{n}")
    if tau <= 0 or not 0 < alpha < 1:
        raise ValueError(f"need tau > 0 and 0 < alpha < 1, got tau={tau}, alpha={alpha}")
    if trials_a == 0 or trials_b == 0:
        return {"estimate": None, "p_value": None, "ci_low": None, "ci_high": None,
                "std_error": None}
    estimate = successes_b / trials_b - successes_a / trials_a
    v = _variance_term(successes_a, trials_a) + _variance_term(successes_b, trials_b)
    t2 = tau * tau
    # log Lambda = 1/2 log(V/(V+tau^2)) + tau^2 (est - theta0)^2 / (2 V (V + tau^2))
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * (estimate - theta0) ** 2 / (
        2.0 * v * (v + t2))
    p_value = 1.0 if log_lambda <= 0 else math.exp(-log_lambda)
    # {theta: Lambda(theta) < 1/alpha}
    half = math.sqrt(v * (v + t2) / t2 * (math.log((v + t2) / v) - 2.0 * math.log(alpha)))
    return {
        "estimate": estimate,
        "p_value": p_value,
        "ci_low": estimate - half,
        "ci_high": estimate + half,
        "std_error": math.sqrt(v),
    }


def sequential_verdict(ci_low: float | None, ci_high: float | None, trials_a: int,
                       trials_b: int, min_trials: int = 30, margin: float = 0.05,
                       higher_is_better: bool = True) -> Verdict:
    """The decision rule on a confidence sequence for p_b - p_a (see docs/statistics.md)."""
    if ci_low is None or ci_high is None or min(trials_a, trials_b) < min_trials:
        return "collecting"
    if ci_low > 0.0:
        return "challenger_better" if higher_is_better else "challenger_worse"
    if ci_high < 0.0:
        return "challenger_worse" if higher_is_better else "challenger_better"
    if -margin <= ci_low and ci_high <= margin:
        return "no_difference"
    return "collecting"


def sequential_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int, *,
                    tau: float = 0.1, alpha: float = 0.05, min_trials: int = 30,
                    margin: float = 0.05, higher_is_better: bool = True) -> dict[str, Any]:
    """Always-valid comparison of two proportions (arm a = champion) with a verdict."""
    res = msprt_two_proportions(successes_a, trials_a, successes_b, trials_b, tau, alpha)
    verdict = sequential_verdict(res["ci_low"], res["ci_high"], trials_a, trials_b,
                                 min_trials, margin, higher_is_better)
    return {
        "method": SEQUENTIAL_METHOD,
        "estimate": res["estimate"],
        "std_error": res["std_error"],
        "p_value": res["p_value"],
        "ci_low": res["ci_low"],
        "ci_high": res["ci_high"],
        "alpha": float(alpha),
        "tau": float(tau),
        "successes_a": successes_a,
        "trials_a": trials_a,
        "successes_b": successes_b,
        "trials_b": trials_b,
        "min_trials": min_trials,
        "equivalence_margin": float(margin),
        "higher_is_better": higher_is_better,
        "verdict": verdict,
    }


def metric_counts(arm: ArmCounts, metric: Metric) -> tuple[int, int]:
    """(successes, trials) of `metric` for one arm: recall = tp/(tp+fn), precision = tp/(tp+fp)."""
    if metric == "recall":
        return arm.tp, arm.tp + arm.fn
    if metric == "precision":
        return arm.tp, arm.tp + arm.fp
    raise ValueError(f"unknown metric {metric!r}")


# ---------------------------------------------------------------------------------------------
# the whole /ab-stats statistics block


def experiment_report(arms: dict[str, ArmCounts], share_b: float | None,
                      settings: StatsSettings | None = None, *,
                      srm_counts: tuple[int, int] | None = None) -> dict[str, Any]:
    """All statistics for /ab-stats from per-arm counts keyed "model_a" and "model_b".

    The sample ratio is judged on `srm_counts` (n_a, n_b) when given, else on the totals;
    `share_b=None` means it is not judged now (`sample_ratio` is None).
    """
    settings = settings or StatsSettings()
    missing = {CHAMPION, CHALLENGER} - set(arms)
    if missing:
        raise ValueError(f"arms must include {CHAMPION!r} and {CHALLENGER!r}; missing {missing}")
    a, b = arms[CHAMPION], arms[CHALLENGER]
    xa, na = metric_counts(a, settings.primary_metric)
    xb, nb = metric_counts(b, settings.primary_metric)
    primary = sequential_test(xa, na, xb, nb, tau=settings.mixture_tau,
                              alpha=settings.sequential_alpha,
                              min_trials=settings.min_labelled_per_arm,
                              margin=settings.equivalence_margin, higher_is_better=True)
    return {
        "confidence": settings.confidence,
        "per_arm": {name: arm_metrics(arms[name], settings.confidence)
                    for name in (CHAMPION, CHALLENGER)},
        "flag_rate_chi2": flag_rate_chi2(a.flagged, a.total, b.flagged, b.total),
        "sample_ratio": None if share_b is None else sample_ratio_check(
            *(srm_counts or (a.total, b.total)), share_b, settings.srm_alpha),
        "primary": {"metric": settings.primary_metric, **primary},
    }

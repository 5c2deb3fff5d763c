"""When the challenger is rolled back, and when a rollback may be undone: judged with statistics.

Every rule fires only when an always-valid test at its own error rate puts the challenger
outside its limit, never on a point estimate, so noise on a few hundred decisions cannot roll
a healthy challenger back. The error rates add up to the budget stated in docs/statistics.md
(<= 1% over a whole A/A experiment), and simulations/ab.py measures it through this code.

Rates are judged on the current allocation period (what is served now), over users:
- flag rate: log(R_b / R_a) outside [-log(ratio), +log(ratio)] (delta-method variance);
- error rate: R_b above `max_error_rate` (errors per attempted row, over users);
- latency: the challenger's share of single predictions slower than the limit exceeds 5%
  (its p95 is above the limit), by an exact binomial tail at a tiny per-look error rate;
- sample ratio: the anytime-valid users test of fraud/stats/users.py;
- worse: the primary comparison's confidence sequence at `alpha_worse` lies below 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy import stats as _sps

from fraud.config import GuardrailConfig
from fraud.stats import ratio
from fraud.stats.aggregates import ArmPeriod, PairedUsers
from fraud.stats.paired import Ratio, log_ratio
from fraud.stats.sequential import msprt

P95_EXCEEDANCE = 0.05  # "p95 above the limit" = more than 5% of calls slower than it


def _log_rate(m: ratio.RatioMoments) -> tuple[float, float] | None:
    """(log R, its delta-method variance), with R smoothed by (y + 0.5)/(x + 1)."""
    e = ratio.estimate(m)
    if e.value is None or e.variance is None:
        return None
    r = (m.sy + 0.5) / (m.sx + 1.0)
    return math.log(r), e.variance / (r * r)


def flag_rate_breach(a: ArmPeriod, b: ArmPeriod, cfg: GuardrailConfig) -> str | None:
    """The challenger's flag rate is surely more than `ratio` times (or less than 1/ratio of)
    the champion's."""
    la, lb = _log_rate(a.flag), _log_rate(b.flag)
    if la is None or lb is None:
        return None
    est, var = lb[0] - la[0], la[1] + lb[1]
    _, low, high = msprt(est, var, cfg.flag_tau, cfg.alpha_flag_rate)
    bound = math.log(cfg.flag_rate_ratio)
    if low > bound or high < -bound:
        return (f"challenger flag rate {math.exp(lb[0]):.4f} vs champion's "
                f"{math.exp(la[0]):.4f}: ratio CS [{math.exp(low):.2f}, {math.exp(high):.2f}] "
                f"outside [1/{cfg.flag_rate_ratio:g}, {cfg.flag_rate_ratio:g}]")
    return None


def paired_flag_rate_breach(u: PairedUsers, cfg: GuardrailConfig) -> str | None:
    """Shadow mode: the same rule on the same transactions (both models decided each one),
    so it works in a pure shadow phase, before any customer sees the challenger."""
    if u.users < cfg.min_users or u.n.sum() < cfg.min_decisions:
        return None
    lr = log_ratio(Ratio(u.flag_a, u.n), Ratio(u.flag_b, u.n))
    if lr is None:
        return None
    _, low, high = msprt(lr[0], lr[1], cfg.flag_tau, cfg.alpha_flag_rate)
    bound = math.log(cfg.flag_rate_ratio)
    if low > bound or high < -bound:
        rate_a, rate_b = u.flag_a.sum() / u.n.sum(), u.flag_b.sum() / u.n.sum()
        return (f"challenger flag rate {rate_b:.4f} vs champion's {rate_a:.4f} on the same "
                f"transactions (shadow): ratio CS [{math.exp(low):.2f}, {math.exp(high):.2f}] "
                f"outside [1/{cfg.flag_rate_ratio:g}, {cfg.flag_rate_ratio:g}]")
    return None


def error_rate_breach(b: ArmPeriod, cfg: GuardrailConfig) -> str | None:
    """The challenger's error rate is surely above `max_error_rate`."""
    e = ratio.estimate(b.error)
    if e.value is None or e.variance is None:
        return None
    _, low, _ = msprt(e.value - cfg.max_error_rate, e.variance, cfg.error_tau,
                      cfg.alpha_error_rate)
    if low > 0:
        return (f"challenger error rate {e.value:.4f} > {cfg.max_error_rate} "
                f"(CS lower bound {low + cfg.max_error_rate:.4f})")
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def latency_breach(latency_a: Sequence[float], latency_b: Sequence[float],
                   cfg: GuardrailConfig) -> str | None:
    """More than 5% of the challenger's recent single predictions are slower than the limit
    (and than `latency_ratio` x the champion's p95), beyond an exact binomial tail."""
    n = len(latency_b)
    if n < cfg.min_decisions:
        return None
    p95_a = percentile(latency_a, 95)
    limit = max(cfg.max_p95_latency_ms,
                cfg.latency_ratio * p95_a if p95_a is not None and cfg.latency_ratio else 0.0)
    slow = sum(1 for x in latency_b if x > limit)
    if slow == 0:
        return None
    tail = float(_sps.binom.sf(slow - 1, n, P95_EXCEEDANCE))
    if tail < cfg.latency_alpha_per_look:
        return (f"challenger p95 latency {percentile(latency_b, 95):.1f} ms: {slow}/{n} "
                f"recent calls slower than {limit:g} ms (binomial tail {tail:.1e})")
    return None


def breaches(current: dict[str, ArmPeriod], srm: dict[str, Any] | None,
             worse_look: dict[str, Any], latency: tuple[Sequence[float], Sequence[float]],
             cfg: GuardrailConfig, *, worse_overridden: bool = False,
             paired: PairedUsers | None = None) -> list[str]:
    """Every guardrail the challenger breaks now, each as one readable reason.

    `current` is the current allocation period; `worse_look` the primary comparison at
    `alpha_worse` (fraud.stats.users.primary_look, or in shadow mode
    fraud.stats.paired.paired_look);
    `worse_overridden` after a forced resume. `paired` (shadow mode): the flag-rate rule
    runs on the paired transactions instead of the split arms (one test at its error rate).
    """
    if not cfg.enabled:
        return []
    a, b = current.get("model_a", ArmPeriod()), current.get("model_b", ArmPeriod())
    reasons: list[str] = []
    if b.users >= cfg.min_users and b.decisions + b.errors >= cfg.min_decisions:
        reasons.append(error_rate_breach(b, cfg) or "")
    if paired is not None:
        reasons.append(paired_flag_rate_breach(paired, cfg) or "")
    elif min(a.users, b.users) >= cfg.min_users and min(a.decisions, b.decisions) >= \
            cfg.min_decisions:
        reasons.append(flag_rate_breach(a, b, cfg) or "")
    reasons.append(latency_breach(*latency, cfg) or "")
    if cfg.rollback_on_srm and srm is not None and srm["mismatch"]:
        reasons.append(f"sample-ratio mismatch over users (anytime p={srm['p_value']:.2e}, "
                       f"observed share {srm['observed_share_b']:.4f} vs "
                       f"{srm['expected_share_b']}, {srm['users_a']}+{srm['users_b']} users)")
    if (cfg.rollback_on_worse and not worse_overridden
            and worse_look["verdict"] == "challenger_worse"):
        reasons.append(f"challenger worse: {worse_look['estimate']:+.4f}, CS at "
                       f"alpha={cfg.alpha_worse} [{worse_look['ci_low']:+.4f}, "
                       f"{worse_look['ci_high']:+.4f}]")
    return [r for r in reasons if r]


def resume_refusal(verdict: str, force: bool) -> str | None:
    """Why a resume after a rollback is refused, or None: a challenger the primary test found
    worse stays rolled back unless an operator forces it (and then the verdict stops rolling
    it back for the rest of this experiment)."""
    if verdict == "challenger_worse" and not force:
        return ("the challenger is significantly worse (final verdict of this experiment); "
                "resume with ?force=true to override")
    return None

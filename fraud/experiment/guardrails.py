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
- worse: the primary comparison's confidence sequence at `alpha_worse` lies below 0. It never
  acts on `label_bias`. In shadow mode the paired look and the split look each get half of
  `alpha_worse`: the split one is kept because a selection both arms share cannot flip its sign;
- customer harm (with the label rows): the challenger's legit-decline rate surely above
  `legit_decline_ratio` x the champion's (fraud/stats/harm.py), at `alpha_legit_decline`,
  judged on the experiment's mature decisions (maturity makes the current period too young).

Periods: the per-period rules (flag rate, error rate, sample ratio) spend `spend` x their
alpha in the k-th period, spend = 6 / (pi^2 k^2) (fraud/stats/periods.py), so a ramp's share
changes do not restart the budget; the worse and harm rules read the whole experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy import stats as _sps

from fraud.config import GuardrailConfig
from fraud.stats import harm, ratio
from fraud.stats.aggregates import ArmPeriod, PairedUsers, Periods
from fraud.stats.cluster import Ratio, log_ratio
from fraud.stats.labels import ArmLabels
from fraud.stats.sequential import msprt

P95_EXCEEDANCE = 0.05  # "p95 above the limit" = more than 5% of calls slower than it


def _log_rate(m: ratio.RatioMoments) -> tuple[float, float] | None:
    """(log R, its delta-method variance), with R smoothed by (y + 0.5)/(x + 1)."""
    e = ratio.estimate(m)
    if e.value is None or e.variance is None:
        return None
    r = (m.sy + 0.5) / (m.sx + 1.0)
    return math.log(r), e.variance / (r * r)


def flag_rate_breach(a: ArmPeriod, b: ArmPeriod, cfg: GuardrailConfig,
                     spend: float = 1.0) -> str | None:
    """The challenger's flag rate is surely more than `ratio` times (or less than 1/ratio of)
    the champion's."""
    la, lb = _log_rate(a.flag), _log_rate(b.flag)
    if la is None or lb is None:
        return None
    est, var = lb[0] - la[0], la[1] + lb[1]
    _, low, high = msprt(est, var, cfg.flag_tau, cfg.alpha_flag_rate * spend)
    bound = math.log(cfg.flag_rate_ratio)
    if low > bound or high < -bound:
        return (f"challenger flag rate {math.exp(lb[0]):.4f} vs champion's "
                f"{math.exp(la[0]):.4f}: ratio CS [{math.exp(low):.2f}, {math.exp(high):.2f}] "
                f"outside [1/{cfg.flag_rate_ratio:g}, {cfg.flag_rate_ratio:g}]")
    return None


def paired_flag_rate_breach(u: PairedUsers, cfg: GuardrailConfig,
                            spend: float = 1.0) -> str | None:
    """Shadow mode: the same rule on the same transactions (both models decided each one),
    so it works in a pure shadow phase, before any customer sees the challenger."""
    if u.users < cfg.min_users or u.n.sum() < cfg.min_decisions:
        return None
    lr = log_ratio(Ratio(u.flag_a, u.n), Ratio(u.flag_b, u.n))
    if lr is None:
        return None
    _, low, high = msprt(lr[0], lr[1], cfg.flag_tau, cfg.alpha_flag_rate * spend)
    bound = math.log(cfg.flag_rate_ratio)
    if low > bound or high < -bound:
        rate_a, rate_b = u.flag_a.sum() / u.n.sum(), u.flag_b.sum() / u.n.sum()
        return (f"challenger flag rate {rate_b:.4f} vs champion's {rate_a:.4f} on the same "
                f"transactions (shadow): ratio CS [{math.exp(low):.2f}, {math.exp(high):.2f}] "
                f"outside [1/{cfg.flag_rate_ratio:g}, {cfg.flag_rate_ratio:g}]")
    return None


def error_rate_breach(b: ArmPeriod, cfg: GuardrailConfig, spend: float = 1.0) -> str | None:
    """The challenger's error rate is surely above `max_error_rate`."""
    e = ratio.estimate(b.error)
    if e.value is None or e.variance is None:
        return None
    _, low, _ = msprt(e.value - cfg.max_error_rate, e.variance, cfg.error_tau,
                      cfg.alpha_error_rate * spend)
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


def legit_decline_test(periods: Periods, cfg: GuardrailConfig, *,
                       labels: ArmLabels | None = None,
                       paired: PairedUsers | None = None) -> dict[str, Any] | None:
    """The customer-harm test at the guardrail's margin and alpha: shadow mode on the paired
    transactions, else on the arms' label rows; None without enough of either."""
    if paired is not None:
        if paired.users < cfg.min_users or paired.n.sum() < cfg.min_decisions:
            return None
        return harm.paired_test(paired, cfg.legit_decline_ratio, cfg.alpha_legit_decline,
                                cfg.legit_decline_tau)
    if labels is None or labels.model_a is None or labels.model_b is None:
        return None
    a, b = labels.model_a, labels.model_b
    if min(a.users, b.users) < cfg.min_users or min(a.n.sum(), b.n.sum()) < cfg.min_decisions:
        return None
    return harm.split_test(periods, cfg.legit_decline_ratio, cfg.alpha_legit_decline,
                           cfg.legit_decline_tau, labels=labels)


def legit_decline_breach(test: dict[str, Any] | None) -> str | None:
    """The challenger declines surely more than `legit_decline_ratio` x the champion's share
    of legit customers."""
    if not test or not test.get("inferior"):
        return None
    return (f"challenger declines legit customers {test['ratio']:.2f}x as often as the "
            f"champion ({test['model_b']:.4f} vs {test['model_a']:.4f}, {test['source']}): "
            f"ratio CS [{test['ci_low']:.2f}, {test['ci_high']:.2f}] at "
            f"alpha={test['alpha']} above {test['margin']:g}")


def _worse(look: dict[str, Any] | None, cfg: GuardrailConfig, what: str) -> str:
    if look is None or look["verdict"] != "challenger_worse":  # label_bias never acts
        return ""
    return (f"challenger worse{what}: {look['estimate']:+.4f}, CS at alpha={cfg.alpha_worse}"
            f"{'/2' if what else ''} [{look['ci_low']:+.4f}, {look['ci_high']:+.4f}]")


def breaches(current: dict[str, ArmPeriod], srm: dict[str, Any] | None,
             worse_look: dict[str, Any], latency: tuple[Sequence[float], Sequence[float]],
             cfg: GuardrailConfig, *, worse_overridden: bool = False,
             paired: PairedUsers | None = None, split_worse: dict[str, Any] | None = None,
             spend: float = 1.0, harm_test: dict[str, Any] | None = None) -> list[str]:
    """Every guardrail the challenger breaks now, each as one readable reason.

    `current` is the current allocation period; `worse_look` the primary comparison at
    `alpha_worse` (fraud.stats.split.look with rollback=True, or in shadow mode
    fraud.stats.paired.paired_look at half of it, `split_worse` the other half);
    `worse_overridden` after a forced resume. `paired` (shadow mode): the flag-rate rule
    runs on the paired transactions instead of the split arms (one test at its error rate).
    `spend`: this period's share of the per-period rules' alphas; `harm_test`:
    `legit_decline_test`'s result (None: not judged).
    """
    if not cfg.enabled:
        return []
    a, b = current.get("model_a", ArmPeriod()), current.get("model_b", ArmPeriod())
    reasons: list[str] = []
    if b.users >= cfg.min_users and b.decisions + b.errors >= cfg.min_decisions:
        reasons.append(error_rate_breach(b, cfg, spend) or "")
    if paired is not None:
        reasons.append(paired_flag_rate_breach(paired, cfg, spend) or "")
    elif min(a.users, b.users) >= cfg.min_users and min(a.decisions, b.decisions) >= \
            cfg.min_decisions:
        reasons.append(flag_rate_breach(a, b, cfg, spend) or "")
    reasons.append(latency_breach(*latency, cfg) or "")
    if cfg.rollback_on_srm and srm is not None and srm["mismatch"]:
        reasons.append(f"sample-ratio mismatch over users (anytime p={srm['p_value']:.2e}, "
                       f"observed share {srm['observed_share_b']:.4f} vs "
                       f"{srm['expected_share_b']}, {srm['users_a']}+{srm['users_b']} users)")
    if cfg.rollback_on_worse and not worse_overridden:
        reasons.append(_worse(worse_look, cfg, " (paired)" if split_worse is not None else ""))
        reasons.append(_worse(split_worse, cfg, " (split)"))
    reasons.append(legit_decline_breach(harm_test) or "")
    return [r for r in reasons if r]


def resume_refusal(verdict: str, force: bool) -> str | None:
    """Why a resume after a rollback is refused, or None: a challenger the primary test found
    worse stays rolled back unless an operator forces it (and then the verdict stops rolling
    it back for the rest of this experiment)."""
    if verdict == "challenger_worse" and not force:
        return ("the challenger is significantly worse (final verdict of this experiment); "
                "resume with ?force=true to override")
    return None

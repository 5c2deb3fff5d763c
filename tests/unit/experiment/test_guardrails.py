"""fraud.experiment.guardrails: each rule fires on a clear breach and stays quiet otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fraud.config import GuardrailConfig, StatsSettings, load_ab_config
from fraud.experiment import guardrails
from fraud.experiment.guardrails import (
    breaches,
    error_rate_breach,
    flag_rate_breach,
    latency_breach,
    percentile,
    resume_refusal,
)
from fraud.stats import ratio
from fraud.stats.aggregates import ArmPeriod
from fraud.stats.sequential import msprt
from fraud.stats.users import primary_look, sample_ratio

CFG = GuardrailConfig()
QUIET_LOOK = {"verdict": "collecting", "estimate": None, "ci_low": None, "ci_high": None}
NO_LATENCY: tuple[list[float], list[float]] = ([], [])


def _arm(users: int, decisions_per_user: int, flag_rate: float = 0.05,
         error_rate: float = 0.0, seed: int = 0, homogeneous: bool = False) -> ArmPeriod:
    """Users with Beta(20 r, 20 (1 - r)) personal flag rates (clustered), or exactly
    round(r x decisions) flags each (`homogeneous`), and Binomial errors per attempted row."""
    rng = np.random.default_rng(seed)
    d = np.full(users, decisions_per_user, dtype=np.int64)
    if homogeneous:
        flags = np.full(users, round(flag_rate * decisions_per_user), dtype=np.int64)
    else:
        p = rng.beta(20 * flag_rate, 20 * (1 - flag_rate), users) if 0 < flag_rate < 1 else \
            np.full(users, flag_rate)
        flags = rng.binomial(d, p)
    attempts = d.copy()
    errors = rng.binomial(attempts, error_rate) if error_rate > 0 else np.zeros(users, np.int64)
    decisions = attempts - errors
    flags = np.minimum(flags, decisions)
    z = np.zeros(users, np.int64)
    return ArmPeriod.from_users(decisions, flags, errors, z, z, z, z, z)


def _current(a: ArmPeriod, b: ArmPeriod) -> dict[str, ArmPeriod]:
    return {"model_a": a, "model_b": b}


# ---------------------------------------------------------------------------------- config


def test_yaml_defaults_and_alarm_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAUDSERVE_AB_CONFIG", raising=False)
    cfg = load_ab_config()
    assert cfg.guardrails == GuardrailConfig()
    assert cfg.statistics == StatsSettings()
    budget = cfg.guardrails.alarm_budget(cfg.statistics.srm_alpha)
    looks = 30 * 86_400 / 2.0
    assert budget == pytest.approx(0.002 + 0.003 + 0.001 + 0.003 + 0.0008 + 1e-10 * looks,
                                   rel=1e-12)
    assert budget == pytest.approx(0.0099296, rel=1e-9)
    assert budget <= 0.01


def test_alarm_budget_counts_only_enabled_rules() -> None:
    full = CFG.alarm_budget(0.001)
    assert CFG.model_copy(update={"rollback_on_srm": False}).alarm_budget(0.001) == \
        pytest.approx(full - 0.001)
    assert CFG.model_copy(update={"rollback_on_worse": False}).alarm_budget(0.001) == \
        pytest.approx(full - 0.003)
    # a faster check interval means more latency looks
    assert CFG.model_copy(update={"check_interval_s": 1.0}).alarm_budget(0.001) == \
        pytest.approx(full + 1e-10 * 30 * 86_400 / 2)


# ---------------------------------------------------------------------------------- flag rate


def test_flag_rate_fires_when_the_challenger_flags_three_times_as_much() -> None:
    a, b = _arm(1000, 20, 0.05, seed=1), _arm(1000, 20, 0.15, seed=2)
    reason = flag_rate_breach(a, b, CFG)
    assert reason is not None and "outside [1/2, 2]" in reason
    assert breaches(_current(a, b), None, QUIET_LOOK, NO_LATENCY, CFG) == [reason]
    # and a third as much
    low = _arm(1000, 20, 0.05 / 3, seed=3)
    assert flag_rate_breach(a, low, CFG) is not None


def test_flag_rate_quiet_on_healthy_and_moderate_differences() -> None:
    a = _arm(400, 20, 0.05, seed=1)
    assert flag_rate_breach(a, _arm(400, 20, 0.05, seed=4), CFG) is None
    assert flag_rate_breach(a, _arm(400, 20, 0.08, seed=5), CFG) is None  # 1.6x: inside
    assert breaches(_current(a, _arm(400, 20, 0.05, seed=4)), None, QUIET_LOOK, NO_LATENCY,
                    CFG) == []


def test_flag_rate_by_hand() -> None:
    """log(R_b/R_a) with R smoothed by (y + 0.5)/(x + 1), delta-method variance / R^2."""
    a, b = _arm(1000, 20, 0.05, seed=1), _arm(1000, 20, 0.15, seed=2)
    ra = (a.flag.sy + 0.5) / (a.flag.sx + 1)
    rb = (b.flag.sy + 0.5) / (b.flag.sx + 1)
    va = ratio.estimate(a.flag).variance / ra**2
    vb = ratio.estimate(b.flag).variance / rb**2
    _, low, high = msprt(math.log(rb / ra), va + vb, 0.5, 0.003)
    assert low > math.log(2)
    assert f"[{math.exp(low):.2f}, {math.exp(high):.2f}]" in flag_rate_breach(a, b, CFG)


def test_flag_rate_needs_min_users_and_decisions() -> None:
    # 4x the flags but only 19 users in the challenger (min_users 20)
    a = _arm(400, 200, 0.05, homogeneous=True)
    b = _arm(19, 200, 0.20, homogeneous=True)
    assert flag_rate_breach(a, b, CFG) is not None  # the rule alone would fire...
    assert breaches(_current(a, b), None, QUIET_LOOK, NO_LATENCY, CFG) == []  # ...not yet
    # enough users but 9 decisions each: 180 < 200 decisions in the champion
    a, b = _arm(20, 9, 0.01, seed=1), _arm(400, 20, 0.5, seed=2)
    assert a.decisions == 180
    assert breaches(_current(a, b), None, QUIET_LOOK, NO_LATENCY, CFG) == []
    # an arm without data
    assert flag_rate_breach(ArmPeriod(), b, CFG) is None
    assert breaches({"model_b": b}, None, QUIET_LOOK, NO_LATENCY, CFG) == []


# ---------------------------------------------------------------------------------- error rate


def test_error_rate_fires_at_ten_percent_with_2000_users() -> None:
    b = _arm(2000, 5, error_rate=0.10, seed=6)
    reason = error_rate_breach(b, CFG)
    assert reason is not None and "> 0.02" in reason
    assert breaches(_current(_arm(2000, 5, seed=7), b), None, QUIET_LOOK, NO_LATENCY,
                    CFG) == [reason]
    # the champion's error rate is not judged
    assert breaches(_current(b, _arm(2000, 5, seed=7)), None, QUIET_LOOK, NO_LATENCY,
                    CFG) == []


def test_error_rate_quiet_when_healthy_or_at_the_limit() -> None:
    assert error_rate_breach(_arm(2000, 5, error_rate=0.01, seed=8), CFG) is None
    assert error_rate_breach(_arm(2000, 5, error_rate=0.02, seed=9), CFG) is None
    assert error_rate_breach(_arm(2000, 5, seed=9), CFG) is None  # no errors at all
    assert error_rate_breach(ArmPeriod(), CFG) is None


def test_error_rate_needs_min_users_and_attempts() -> None:
    # every row fails, but 19 users
    few_users = _arm(19, 50, error_rate=1.0, seed=1)
    assert error_rate_breach(few_users, CFG) is not None
    assert breaches(_current(ArmPeriod(), few_users), None, QUIET_LOOK, NO_LATENCY, CFG) == []
    # 20 users with 9 attempts: 180 < 200
    few_rows = _arm(20, 9, error_rate=1.0, seed=1)
    assert few_rows.decisions + few_rows.errors == 180
    assert breaches(_current(ArmPeriod(), few_rows), None, QUIET_LOOK, NO_LATENCY, CFG) == []
    enough = _arm(20, 10, error_rate=1.0, seed=1)
    assert len(breaches(_current(ArmPeriod(), enough), None, QUIET_LOOK, NO_LATENCY, CFG)) == 1


# ---------------------------------------------------------------------------------- latency


def test_percentile_linear_interpolation() -> None:
    assert percentile([], 95) is None
    assert percentile([7.0], 95) == 7.0
    values = list(np.random.default_rng(0).lognormal(3, 1, 257))
    for q in (0, 5, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_latency_fires_when_most_calls_are_slow() -> None:
    fast_a = [20.0] * 300
    slow_b = [400.0] * 240 + [30.0] * 60
    reason = latency_breach(fast_a, slow_b, CFG)
    assert reason is not None and "240/300" in reason and "slower than 250 ms" in reason
    assert breaches({}, None, QUIET_LOOK, (fast_a, slow_b), CFG) == [reason]
    # without champion data the absolute limit applies
    assert latency_breach([], slow_b, CFG) is not None


def test_latency_quiet_cases() -> None:
    fast = [20.0] * 300
    assert latency_breach(fast, fast, CFG) is None
    # 6% of calls slow at n=200: binomial tail ~0.3, far above 1e-10
    borderline = [400.0] * 12 + [20.0] * 188
    assert latency_breach(fast, borderline, CFG) is None
    assert float(sps.binom.sf(11, 200, 0.05)) > 0.1
    # below min_decisions
    assert latency_breach(fast, [400.0] * 199, CFG) is None
    assert latency_breach(fast, [400.0] * 200, CFG) is not None
    # an overloaded host: the champion's p95 is 300 ms, so the limit is 600 ms
    slow_a = [300.0] * 300
    assert latency_breach(slow_a, [400.0] * 300, CFG) is None
    assert latency_breach(slow_a, [700.0] * 300, CFG) is not None
    # latency_ratio 0 judges the absolute limit alone
    absolute = CFG.model_copy(update={"latency_ratio": 0.0})
    assert latency_breach(slow_a, [400.0] * 300, absolute) is not None


def test_latency_threshold_is_the_binomial_tail() -> None:
    """The smallest number of slow calls out of 1000 that fires is where the tail drops
    below latency_alpha_per_look."""
    n = 1000
    need = next(k for k in range(1, n) if sps.binom.sf(k - 1, n, 0.05) < 1e-10)
    fast = [10.0] * n
    assert latency_breach(fast, [500.0] * need + [10.0] * (n - need), CFG) is not None
    assert latency_breach(fast, [500.0] * (need - 1) + [10.0] * (n - need + 1), CFG) is None
    assert 90 < need < 130


# ---------------------------------------------------------------------------------- breaches


def _worse_look() -> dict:
    def users(tp: int, fn: int, n: int) -> ArmPeriod:
        t, f, z = np.full(n, tp), np.full(n, fn), np.zeros(n, np.int64)
        return ArmPeriod.from_users(t + f, t, z, t + f, t, z, f, z)

    periods = {0: {"model_a": users(9, 1, 30), "model_b": users(5, 5, 30)}}
    look = primary_look(periods, StatsSettings(), CFG.alpha_worse)
    assert look["verdict"] == "challenger_worse"
    return look


def test_worse_rule_and_override() -> None:
    look = _worse_look()
    reasons = breaches({}, None, look, NO_LATENCY, CFG)
    assert len(reasons) == 1 and reasons[0].startswith("challenger worse: -0.4000")
    assert f"alpha={CFG.alpha_worse}" in reasons[0]
    assert breaches({}, None, look, NO_LATENCY, CFG, worse_overridden=True) == []
    assert breaches({}, None, look, NO_LATENCY,
                    CFG.model_copy(update={"rollback_on_worse": False})) == []


def test_srm_rule() -> None:
    srm = sample_ratio(5000, 4000, 0.5, StatsSettings())
    reasons = breaches({}, srm, QUIET_LOOK, NO_LATENCY, CFG)
    assert len(reasons) == 1 and reasons[0].startswith("sample-ratio mismatch over users")
    assert "5000+4000 users" in reasons[0]
    assert breaches({}, srm, QUIET_LOOK, NO_LATENCY,
                    CFG.model_copy(update={"rollback_on_srm": False})) == []
    ok = sample_ratio(5000, 5000, 0.5, StatsSettings())
    assert breaches({}, ok, QUIET_LOOK, NO_LATENCY, CFG) == []


def test_every_rule_at_once_and_disabled() -> None:
    a, b = _arm(1000, 20, 0.05, seed=1), _arm(1000, 20, 0.15, error_rate=0.10, seed=2)
    srm = sample_ratio(5000, 4000, 0.5, StatsSettings())
    latency = ([20.0] * 300, [400.0] * 300)
    reasons = breaches(_current(a, b), srm, _worse_look(), latency, CFG)
    assert [r.split()[0] for r in reasons] == ["challenger", "challenger", "challenger",
                                               "sample-ratio", "challenger"]
    assert "error rate" in reasons[0] and "flag rate" in reasons[1]
    assert "latency" in reasons[2] and "worse" in reasons[4]
    off = CFG.model_copy(update={"enabled": False})
    assert breaches(_current(a, b), srm, _worse_look(), latency, off) == []


def test_empty_inputs_are_quiet() -> None:
    assert breaches({}, None, QUIET_LOOK, NO_LATENCY, CFG) == []
    assert breaches({}, None, primary_look({}, StatsSettings()), NO_LATENCY, CFG) == []


# ---------------------------------------------------------------------------------- resume


def test_resume_refusal() -> None:
    assert resume_refusal("challenger_worse", False) is not None
    assert "force=true" in resume_refusal("challenger_worse", False)
    assert resume_refusal("challenger_worse", True) is None
    for verdict in ("collecting", "no_difference", "challenger_better"):
        assert resume_refusal(verdict, False) is None


def test_p95_exceedance_constant() -> None:
    assert guardrails.P95_EXCEEDANCE == 0.05

"""Exact-value and edge-case tests for fraud.stats.users (pure functions over per-user sums)."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest
from pydantic import ValidationError

from fraud.config import StatsSettings
from fraud.schema import ARMS, CHALLENGER, CHAMPION
from fraud.stats import ratio
from fraud.stats.aggregates import SUM_COLUMNS, ArmPeriod, Periods
from fraud.stats.sequential import Memory, msprt, srm_p_value
from fraud.stats.users import (
    arm_metrics,
    metric_moments,
    pooled,
    primary,
    primary_look,
    sample_ratio,
    sequential_verdict,
    stratified_difference,
)

S = StatsSettings(min_fraud_users_per_arm=10)  # the hand-made periods have 10 users per arm


def _dumps(obj: object) -> str:
    return json.dumps(obj, allow_nan=False)


def _users(tp, fn, fp=0, tn=0, flags=None, errors=0, n: int | None = None) -> ArmPeriod:
    """An arm from per-user counts (scalars broadcast to `n` users); decisions = the mature
    confusion counts, labelled = all of them."""
    cols = [np.asarray(v, dtype=np.int64) for v in (tp, fn, fp, tn, errors)]
    size = n if n is not None else max(c.size for c in cols)
    tp_, fn_, fp_, tn_, err = (np.broadcast_to(c, (size,)).copy() for c in cols)
    decisions = tp_ + fn_ + fp_ + tn_
    fl = tp_ + fp_ if flags is None else np.broadcast_to(np.asarray(flags), (size,)).copy()
    return ArmPeriod.from_users(decisions, fl, err, decisions, tp_, fp_, fn_, tn_)


def _ratio_by_hand(x: list[float], y: list[float]) -> tuple[float, float]:
    """(R, max(delta-method variance, binomial floor)) written out."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if a > 0]
    k = len(pairs)
    sx, sy = sum(a for a, _ in pairs), sum(b for _, b in pairs)
    r = sy / sx
    delta = sum((b - r * a) ** 2 for a, b in pairs) / sx**2 * k / (k - 1)
    p = (sy + 1) / (sx + 2)
    return r, max(delta, p * (1 - p) / sx)


# ---------------------------------------------------------------------------------- settings


def test_settings_defaults_and_validation() -> None:
    assert StatsSettings().model_dump() == {
        "confidence": 0.95, "srm_alpha": 0.001, "srm_concentration": 100.0,
        "sequential_alpha": 0.05, "mixture_tau": 0.1, "min_labelled_per_arm": 30,
        "min_users_per_arm": 10, "equivalence_margin": 0.05, "primary_metric": "recall",
        "label_bias_margin": 0.1, "min_fraud_users_per_arm": 30, "legit_decline_margin": 1.25,
        "legit_decline_tau": 0.2, "same_flag_rate_min_frauds": 50, "paired_metric": None,
    }
    for bad in ({"confidence": 1.0}, {"srm_alpha": 0.0}, {"min_users_per_arm": 1},
                {"mixture_tau": 0.0}, {"primary_metric": "f1"}, {"unknown": 1},
                {"label_bias_margin": 0.0}, {"legit_decline_margin": 1.0},
                {"min_fraud_users_per_arm": 1}, {"paired_metric": "f1"}):
        with pytest.raises(ValidationError):
            StatsSettings(**bad)
    with pytest.raises(ValidationError):
        S.confidence = 0.9  # frozen


# ------------------------------------------------------------------------------- aggregates


def test_from_users_moments_and_counts() -> None:
    arm = ArmPeriod.from_users(
        decisions=np.array([4, 0, 6]), flags=np.array([1, 0, 3]), errors=np.array([0, 2, 1]),
        labelled=np.array([2, 0, 5]), tp=np.array([1, 0, 2]), fp=np.array([0, 0, 1]),
        fn=np.array([1, 0, 0]), tn=np.array([2, 0, 3]))
    assert (arm.users, arm.decisions, arm.flagged, arm.errors, arm.labelled) == (3, 10, 4, 3, 7)
    assert (arm.tp, arm.fp, arm.fn, arm.tn, arm.mature) == (3, 1, 1, 5, 10)
    assert arm.flag == ratio.RatioMoments(2, 10, 4, 16 + 36, 1 + 9, 4 + 18)
    assert arm.error == ratio.RatioMoments(3, 13, 3, 16 + 4 + 49, 4 + 1, 4 + 7)
    assert arm.recall == ratio.RatioMoments(2, 4, 3, 4 + 4, 1 + 4, 2 + 4)
    assert arm.precision == ratio.RatioMoments(2, 4, 3, 1 + 9, 1 + 4, 1 + 6)


def test_from_sums_equals_from_users() -> None:
    rng = np.random.default_rng(5)
    n = 60
    tp, fn, fp, tn = (rng.poisson(lam, n) for lam in (0.5, 0.3, 0.7, 6.0))
    decisions = tp + fn + fp + tn + rng.poisson(1.0, n)
    flags, errors, labelled = tp + fp, rng.poisson(0.1, n), tp + fn + fp + tn
    want = ArmPeriod.from_users(decisions, flags, errors, labelled, tp, fp, fn, tn)
    att, fr, fm = decisions + errors, tp + fn, tp + fp
    sums = {
        "users": n, "decisions": decisions.sum(), "flagged": flags.sum(),
        "errors": errors.sum(), "labelled": labelled.sum(), "tp": tp.sum(), "fp": fp.sum(),
        "fn": fn.sum(), "tn": tn.sum(),
        "users_decided": (decisions > 0).sum(), "dd": (decisions**2).sum(),
        "ff": (flags**2).sum(), "df": (decisions * flags).sum(),
        "users_attempted": (att > 0).sum(), "aa": (att**2).sum(), "ee": (errors**2).sum(),
        "ae": (att * errors).sum(),
        "users_fraud": (fr > 0).sum(), "pp": (fr**2).sum(), "tt": (tp**2).sum(),
        "pt": (fr * tp).sum(),
        "users_flagged_mature": (fm > 0).sum(), "qq": (fm**2).sum(), "qt": (fm * tp).sum(),
    }
    got = ArmPeriod.from_sums([int(sums[c]) for c in SUM_COLUMNS])
    assert got == want
    assert ArmPeriod.from_sums([None] * len(SUM_COLUMNS)) == ArmPeriod()


def test_pooled_sums_an_arm_over_periods() -> None:
    a0, a1, b1 = _users(tp=2, fn=1, n=5), _users(tp=1, fn=3, n=4), _users(tp=3, fn=0, n=7)
    periods: Periods = {0: {CHAMPION: a0}, 1: {CHAMPION: a1, CHALLENGER: b1}}
    assert pooled(periods, CHAMPION) == a0 + a1
    assert pooled(periods, CHAMPION).users == 9
    assert pooled(periods, CHALLENGER) == b1
    assert pooled({}, CHAMPION) == ArmPeriod()
    assert (CHAMPION, CHALLENGER) == ARMS == ("model_a", "model_b")


def test_metric_moments() -> None:
    arm = _users(tp=[1, 2], fn=[1, 0], fp=[3, 0])
    assert metric_moments(arm, "recall") == arm.recall
    assert metric_moments(arm, "precision") == arm.precision
    with pytest.raises(ValueError):
        metric_moments(arm, "f1")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- arm_metrics


def test_arm_metrics_shape_and_values() -> None:
    arm = _users(tp=[1, 2, 0, 4], fn=[1, 0, 1, 1], fp=[0, 1, 2, 0], tn=[10, 7, 20, 5],
                 errors=[0, 1, 0, 0])
    out = arm_metrics(arm)
    assert set(out) == {"users", "labelled", "mature", "tp", "fp", "fn", "tn", "flag_rate",
                        "error_rate", "precision", "recall", "f1"}
    assert (out["users"], out["tp"], out["fp"], out["fn"], out["tn"]) == (4, 7, 3, 3, 42)
    assert out["labelled"] == out["mature"] == 55
    assert out["f1"] == pytest.approx(14 / 20)
    z = NormalDist().inv_cdf(0.975)
    for key, moments in (("flag_rate", arm.flag), ("error_rate", arm.error),
                         ("precision", arm.precision), ("recall", arm.recall)):
        assert out[key] == ratio.summary(moments, z)
        assert set(out[key]) == {"value", "ci_low", "ci_high", "std_error", "users", "n"}
    r, v = _ratio_by_hand([2, 2, 1, 5], [1, 2, 0, 4])
    assert out["recall"]["value"] == pytest.approx(r) == pytest.approx(7 / 10)
    assert out["recall"]["std_error"] == pytest.approx(math.sqrt(v))
    assert out["error_rate"]["value"] == pytest.approx(1 / 56)
    # the confidence changes the interval only
    narrow = arm_metrics(arm, 0.90)["recall"]
    assert narrow["value"] == out["recall"]["value"]
    assert narrow["ci_high"] - narrow["ci_low"] < out["recall"]["ci_high"] - out["recall"]["ci_low"]
    _dumps(out)


def test_arm_metrics_empty_arm_is_none() -> None:
    out = arm_metrics(ArmPeriod())
    assert out["f1"] is None
    for key in ("flag_rate", "error_rate", "precision", "recall"):
        assert out[key]["value"] is None and out[key]["std_error"] is None
    _dumps(out)
    only_tn = arm_metrics(_users(tp=0, fn=0, tn=5, n=3))
    assert only_tn["f1"] is None and only_tn["recall"]["value"] is None
    assert only_tn["flag_rate"]["value"] == 0.0
    _dumps(only_tn)


# ----------------------------------------------------------------------- sequential_verdict


@pytest.mark.parametrize(("low", "high", "enough", "margin", "verdict"), [
    (None, 0.1, True, 0.05, "collecting"),
    (-0.1, None, True, 0.05, "collecting"),
    (0.01, 0.2, False, 0.05, "collecting"),
    (-0.2, -0.01, False, 0.05, "collecting"),
    (-0.01, 0.01, False, 0.05, "collecting"),
    (0.01, 0.2, True, 0.05, "challenger_better"),
    (1e-12, 0.01, True, 0.05, "challenger_better"),  # inside the margin but above 0
    (-0.2, -0.01, True, 0.05, "challenger_worse"),
    (-0.01, -1e-12, True, 0.05, "challenger_worse"),
    (0.0, 0.2, True, 0.05, "collecting"),  # touches 0: not better
    (-0.2, 0.0, True, 0.05, "collecting"),
    (-0.05, 0.05, True, 0.05, "no_difference"),  # margin inclusive
    (0.0, 0.0, True, 0.05, "no_difference"),
    (-0.0500001, 0.04, True, 0.05, "collecting"),
    (-0.04, 0.0500001, True, 0.05, "collecting"),
    (-0.01, 0.01, True, 0.005, "collecting"),
    (-0.01, 0.01, True, 0.01, "no_difference"),
])
def test_sequential_verdict_rule(low: float | None, high: float | None, enough: bool,
                                 margin: float, verdict: str) -> None:
    assert sequential_verdict(low, high, enough, margin) == verdict


# -------------------------------------------------------------------- stratified_difference


def test_stratified_difference_two_periods_by_hand() -> None:
    xa1, ya1 = [5, 3, 4], [4, 2, 4]
    xb1, yb1 = [2, 6], [2, 3]
    xa2, ya2 = [10, 10], [9, 7]
    xb2, yb2 = [4, 4, 4, 8], [3, 4, 2, 5]

    def arm(x: list[int], y: list[int]) -> ArmPeriod:
        return _users(tp=y, fn=[a - b for a, b in zip(x, y, strict=True)])

    periods: Periods = {3: {CHAMPION: arm(xa1, ya1), CHALLENGER: arm(xb1, yb1)},
                        4: {CHAMPION: arm(xa2, ya2), CHALLENGER: arm(xb2, yb2)}}
    (ra1, va1), (rb1, vb1) = _ratio_by_hand(xa1, ya1), _ratio_by_hand(xb1, yb1)
    (ra2, va2), (rb2, vb2) = _ratio_by_hand(xa2, ya2), _ratio_by_hand(xb2, yb2)
    w1, w2 = 12 + 8, 20 + 20  # metric trials of both arms per period
    est = (w1 * (rb1 - ra1) + w2 * (rb2 - ra2)) / (w1 + w2)
    var = (w1**2 * (va1 + vb1) + w2**2 * (va2 + vb2)) / (w1 + w2) ** 2
    got = stratified_difference(periods, "recall")
    assert got is not None
    assert got["estimate"] == pytest.approx(est, rel=1e-12)
    assert got["variance"] == pytest.approx(var, rel=1e-12)
    assert (got["strata"], got["users"], got["trials"]) == (2, (5, 6), (32, 28))
    # numbers: (1/3)(5/8 - 10/12) + (2/3)(14/20 - 16/20)
    assert got["estimate"] == pytest.approx((5 / 8 - 10 / 12) / 3 + (14 / 20 - 16 / 20) * 2 / 3)


def test_stratified_difference_skips_periods_without_both_arms() -> None:
    a, b = _users(tp=3, fn=1, n=12), _users(tp=2, fn=2, n=15)
    base: Periods = {1: {CHAMPION: a, CHALLENGER: b}}
    want = stratified_difference(base, "recall")
    extra: Periods = {
        0: {CHAMPION: _users(tp=1, fn=1, n=50)},  # challenger absent (share 0)
        1: base[1],
        2: {CHAMPION: _users(tp=1, fn=0, n=9), CHALLENGER: _users(tp=0, fn=0, tn=4, n=9)},
    }
    assert stratified_difference(extra, "recall") == want
    assert want is not None and want["strata"] == 1
    assert stratified_difference({}, "recall") is None
    assert stratified_difference({0: {}}, "recall") is None


def test_stratification_removes_simpsons_bias_of_a_share_change() -> None:
    """A/A within each period, but recall and the share change between periods: pooling
    the arms finds a large difference, stratifying finds exactly none."""
    periods: Periods = {
        0: {CHAMPION: _users(tp=9, fn=1, n=500), CHALLENGER: _users(tp=9, fn=1, n=500)},
        1: {CHAMPION: _users(tp=5, fn=5, n=100), CHALLENGER: _users(tp=5, fn=5, n=900)},
    }
    got = stratified_difference(periods, "recall")
    assert got is not None and got["estimate"] == pytest.approx(0.0, abs=1e-15)
    pooled_diff = ratio.difference(pooled(periods, CHAMPION).recall,
                                   pooled(periods, CHALLENGER).recall)
    assert pooled_diff is not None
    assert pooled_diff[0] == pytest.approx(9000 / 14000 - 5000 / 6000)  # -0.190
    assert primary_look(periods, S)["verdict"] == "no_difference"


def test_stratified_difference_precision() -> None:
    a = _users(tp=[3, 1, 2], fn=0, fp=[1, 1, 0])
    b = _users(tp=[1, 1, 1, 2], fn=0, fp=[2, 0, 1, 1])
    got = stratified_difference({0: {CHAMPION: a, CHALLENGER: b}}, "precision")
    d = ratio.difference(a.precision, b.precision)
    assert got is not None and d is not None
    assert (got["estimate"], got["variance"]) == pytest.approx(d)
    assert got["estimate"] == pytest.approx(5 / 9 - 6 / 8)
    assert got["trials"] == (8, 9)


# ------------------------------------------------------------------------------- primary_look


def _worse_periods(users_a: int = 10, users_b: int = 10) -> Periods:
    """Champion recall 0.9 and challenger 0.2, 10 fraud cases per user."""
    return {0: {CHAMPION: _users(tp=9, fn=1, n=users_a),
                CHALLENGER: _users(tp=2, fn=8, n=users_b)}}


def test_primary_look_values() -> None:
    look = primary_look(_worse_periods(), S)
    va = (91 / 102) * (11 / 102) / 100  # homogeneous users: the binomial floors
    vb = (21 / 102) * (81 / 102) / 100
    p, low, high = msprt(-0.7, va + vb, 0.1, 0.05)
    assert look["estimate"] == pytest.approx(-0.7)
    assert look["std_error"] == pytest.approx(math.sqrt(va + vb))
    assert (look["p_value"], look["ci_low"], look["ci_high"]) == pytest.approx((p, low, high))
    assert (look["users_a"], look["users_b"], look["trials_a"], look["trials_b"],
            look["strata"]) == (10, 10, 100, 100, 1)
    assert look["verdict"] == "challenger_worse"
    # a stricter alpha widens the sequence
    strict = primary_look(_worse_periods(), S, alpha=0.003)
    assert strict["ci_high"] - strict["ci_low"] > look["ci_high"] - look["ci_low"]


def test_primary_look_needs_min_users_and_trials() -> None:
    assert primary_look(_worse_periods(9, 10), S)["verdict"] == "collecting"
    assert primary_look(_worse_periods(10, 9), S)["verdict"] == "collecting"
    assert primary_look(_worse_periods(9, 10), S)["ci_high"] < 0  # it would have been worse
    assert primary_look(_worse_periods(), S.model_copy(update={"min_users_per_arm": 11})
                        )["verdict"] == "collecting"
    assert primary_look(_worse_periods(), S.model_copy(update={"min_labelled_per_arm": 101})
                        )["verdict"] == "collecting"
    assert primary_look(_worse_periods(), S.model_copy(update={"min_labelled_per_arm": 100})
                        )["verdict"] == "challenger_worse"
    # users count only when they have metric trials: 30 users, 9 of them with fraud
    a = _users(tp=[9] * 9 + [0] * 21, fn=[1] * 9 + [0] * 21, tn=5)
    b = _users(tp=[2] * 10 + [0] * 20, fn=[8] * 10 + [0] * 20, tn=5)
    look = primary_look({0: {CHAMPION: a, CHALLENGER: b}}, S)
    assert (look["users_a"], look["users_b"], look["verdict"]) == (9, 10, "collecting")


def test_primary_look_empty() -> None:
    look = primary_look({}, S)
    assert look == {"estimate": None, "std_error": None, "p_value": None, "ci_low": None,
                    "ci_high": None, "users_a": 0, "users_b": 0, "trials_a": 0,
                    "trials_b": 0, "strata": 0, "verdict": "collecting", "enough": False,
                    "fraud_users_a": 0, "fraud_users_b": 0,
                    "clustered": "user, within each period"}


def test_primary_look_needs_min_fraud_users() -> None:
    """Ten users per arm each with ten frauds: enough trials, too few fraud users at 30."""
    assert primary_look(_worse_periods(), StatsSettings())["verdict"] == "collecting"
    assert primary_look(_worse_periods(30, 30), StatsSettings())["verdict"] == \
        "challenger_worse"


# ------------------------------------------------------------------------------------ primary


def test_primary_shape_and_memory() -> None:
    block, mem = primary(_worse_periods(), S, Memory())
    look = primary_look(_worse_periods(), S)
    assert set(block) == {
        "metric", "method", "alpha", "tau", "min_users_per_arm", "min_labelled_per_arm",
        "equivalence_margin", "estimate", "std_error", "p_value", "ci_low", "ci_high",
        "this_look", "users_a", "users_b", "trials_a", "trials_b", "strata", "verdict",
        "verdict_final", "min_fraud_users_per_arm", "fraud_users_a", "fraud_users_b",
        "clustered"}
    assert (block["metric"], block["alpha"], block["tau"]) == ("recall", 0.05, 0.1)
    assert block["this_look"] == {k: look[k] for k in ("estimate", "p_value", "ci_low",
                                                       "ci_high", "verdict")}
    assert (block["verdict"], block["verdict_final"]) == ("challenger_worse", True)
    assert mem == Memory(look["p_value"], look["ci_low"], look["ci_high"], "challenger_worse",
                         1, 1)
    _dumps(block)
    _dumps(mem.to_json())


def test_primary_verdict_is_latched_and_p_is_running_minimum() -> None:
    # look 1: the challenger is clearly worse; look 2: data that alone says no difference
    _, mem = primary(_worse_periods(), S, Memory())
    same = {0: {CHAMPION: _users(tp=8, fn=2, n=200), CHALLENGER: _users(tp=8, fn=2, n=200)}}
    block, mem2 = primary(same, S, mem)
    assert block["this_look"]["verdict"] == "no_difference"
    assert block["this_look"]["p_value"] == 1.0
    assert (block["verdict"], block["verdict_final"]) == ("challenger_worse", True)
    assert block["p_value"] == mem.p_min < 1e-6
    assert mem2.verdict_look == 1 and mem2.looks == 2
    # a look without enough data is not folded in: everything is kept
    block3, mem3 = primary({}, S, mem2)
    assert block3["p_value"] == mem2.p_min and block3["verdict"] == "challenger_worse"
    assert mem3 == mem2


def test_primary_collecting_is_not_final() -> None:
    block, mem = primary(_worse_periods(9, 9), S, Memory())
    assert (block["verdict"], block["verdict_final"]) == ("collecting", False)
    assert mem == Memory()  # too few users: the look does not enter the memory
    assert block["p_value"] is None and block["ci_low"] is None
    block, mem = primary(_worse_periods(), S, mem)
    assert (block["verdict"], mem.verdict_look) == ("challenger_worse", 1)


DEGENERATE: list[Periods] = [
    {},
    {0: {}},
    {0: {CHAMPION: ArmPeriod()}},
    {0: {CHAMPION: ArmPeriod(), CHALLENGER: ArmPeriod()}},
    {0: {CHAMPION: _users(tp=0, fn=0, tn=5, n=30), CHALLENGER: _users(tp=0, fn=0, tn=5, n=30)}},
    {0: {CHAMPION: _users(tp=4, fn=0, n=30), CHALLENGER: _users(tp=4, fn=0, n=30)}},  # recall 1
    {0: {CHAMPION: _users(tp=0, fn=4, n=30), CHALLENGER: _users(tp=0, fn=4, n=30)}},  # recall 0
    {0: {CHAMPION: _users(tp=4, fn=0, n=30), CHALLENGER: _users(tp=0, fn=4, n=30)}},
    {0: {CHAMPION: _users(tp=5, fn=5, n=40)}, 1: {CHALLENGER: _users(tp=5, fn=5, n=40)}},
]


@pytest.mark.parametrize("periods", DEGENERATE)
def test_primary_is_json_clean_on_degenerate_input(periods: Periods) -> None:
    block, mem = primary(periods, S, Memory())
    _dumps(block)
    _dumps(mem.to_json())
    _dumps(primary_look(periods, S))
    for arm in ARMS:
        _dumps(arm_metrics(pooled(periods, arm)))


def test_primary_is_json_clean_with_one_user_in_an_arm() -> None:
    periods: Periods = {0: {CHAMPION: _users(tp=3, fn=1, n=20), CHALLENGER: _users(tp=3, fn=1,
                                                                                  n=1)}}
    block, mem = primary(periods, S, Memory())
    _dumps(block)
    _dumps(mem.to_json())


def test_one_early_look_with_one_user_does_not_poison_the_memory() -> None:
    early: Periods = {0: {CHAMPION: _users(tp=3, fn=1, n=20), CHALLENGER: _users(tp=3, fn=1,
                                                                                 n=1)}}
    _, mem = primary(early, S, Memory())
    block, mem = primary(_worse_periods(), S, mem)
    assert block["ci_low"] is not None and math.isfinite(block["ci_low"])
    assert math.isfinite(block["ci_high"])


def test_a_new_period_with_one_user_does_not_blind_the_comparison() -> None:
    periods = _worse_periods(200, 200)
    periods[1] = {CHAMPION: _users(tp=1, fn=0, n=1), CHALLENGER: _users(tp=0, fn=1, n=3)}
    look = primary_look(periods, S)
    assert look["p_value"] is not None and math.isfinite(look["p_value"])
    assert look["verdict"] == "challenger_worse"


# ------------------------------------------------------------------------------ sample_ratio


@pytest.mark.parametrize("share", [None, 0.0, 1.0, -0.2, 1.5])
def test_sample_ratio_none_without_a_split(share: float | None) -> None:
    assert sample_ratio(500, 400, share, S) is None


def test_sample_ratio_values() -> None:
    ok = sample_ratio(5000, 5000, 0.5, S)
    assert ok == {"method": ok["method"], "unit": "users", "expected_share_b": 0.5,
                  "observed_share_b": 0.5, "users_a": 5000, "users_b": 5000,
                  "p_value": 1.0, "alpha": 0.001, "mismatch": False}
    bad = sample_ratio(5000, 4000, 0.5, S)
    assert bad is not None and bad["mismatch"] is True
    assert bad["p_value"] == pytest.approx(srm_p_value(5000, 4000, 0.5, 100.0))
    assert bad["observed_share_b"] == pytest.approx(4 / 9)
    uneven = sample_ratio(8000, 2000, 0.2, S)
    assert uneven is not None and uneven["mismatch"] is False and uneven["p_value"] == 1.0
    empty = sample_ratio(0, 0, 0.5, S)
    assert empty is not None
    assert (empty["observed_share_b"], empty["p_value"], empty["mismatch"]) == (None, 1.0, False)
    for out in (ok, bad, uneven, empty):
        _dumps(out)


def test_sample_ratio_uses_the_running_minimum() -> None:
    now = srm_p_value(5100, 4900, 0.5, 100.0)
    assert now > 0.5
    out = sample_ratio(5100, 4900, 0.5, S, p_min=1e-5)
    assert out is not None and out["p_value"] == 1e-5 and out["mismatch"] is True
    out = sample_ratio(5100, 4900, 0.5, S, p_min=0.3)
    assert out is not None and out["p_value"] == 0.3 and out["mismatch"] is False
    out = sample_ratio(5000, 4000, 0.5, S, p_min=0.3)
    assert out is not None and out["p_value"] == pytest.approx(
        srm_p_value(5000, 4000, 0.5, 100.0))
    strict = S.model_copy(update={"srm_alpha": 1e-6})
    out = sample_ratio(5100, 4900, 0.5, strict, p_min=1e-5)
    assert out is not None and out["mismatch"] is False

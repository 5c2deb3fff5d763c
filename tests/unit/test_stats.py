"""Exact-value and edge-case tests for fraud.stats (pure functions, no server)."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError
from scipy import integrate
from scipy import stats as sps

from fraud.stats import (
    ArmCounts,
    StatsSettings,
    arm_metrics,
    experiment_report,
    f1_summary,
    flag_rate_chi2,
    metric_counts,
    msprt_two_proportions,
    proportion_summary,
    sample_ratio_check,
    sequential_test,
    sequential_verdict,
    wilson_interval,
)

Z95 = 1.959963984540054


def _dumps(obj: object) -> str:
    return json.dumps(obj, allow_nan=False)


# ---------------------------------------------------------------------------------- Wilson


def test_wilson_by_hand_8_of_10() -> None:
    n, p = 10, 0.8
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    low, high = wilson_interval(8, 10, 0.95)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_published_values(x: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(x, n, 0.95)
    assert lo == pytest.approx(low, abs=6e-5)
    assert hi == pytest.approx(high, abs=6e-5)


def test_wilson_edges_and_errors() -> None:
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(0, 5)
    assert low == 0.0 and 0 < high < 1
    low, high = wilson_interval(5, 5)
    assert high == 1.0 and 0 < low < 1
    with pytest.raises(ValueError):
        wilson_interval(6, 5)
    with pytest.raises(ValueError):
        wilson_interval(-1, 5)
    # a higher confidence gives a wider interval
    assert wilson_interval(8, 10, 0.99)[0] < wilson_interval(8, 10, 0.95)[0]


def test_proportion_summary() -> None:
    assert proportion_summary(3, 4) == {
        "value": 0.75, "ci_low": wilson_interval(3, 4)[0], "ci_high": wilson_interval(3, 4)[1],
        "n": 4}
    assert proportion_summary(0, 0) == {"value": None, "ci_low": None, "ci_high": None, "n": 0}


# -------------------------------------------------------------------------------------- F1


def test_f1_value_and_interval_through_jaccard() -> None:
    s = f1_summary(tp=40, fp=10, fn=20)
    assert s["value"] == pytest.approx(2 * 40 / (2 * 40 + 10 + 20))
    # F1 = 2J/(1+J) with J = tp/(tp+fp+fn) = 40/70, so the bounds are Wilson's on 40/70 mapped
    j_low, j_high = wilson_interval(40, 70)
    assert s["ci_low"] == pytest.approx(2 * j_low / (1 + j_low))
    assert s["ci_high"] == pytest.approx(2 * j_high / (1 + j_high))
    assert s["ci_low"] < s["value"] < s["ci_high"]
    assert s["n"] == 70


def test_f1_edges() -> None:
    assert f1_summary(0, 0, 0)["value"] is None
    only_fp = f1_summary(0, 3, 0)  # precision 0, recall undefined: F1 = 0 (defined)
    assert only_fp["value"] == 0.0 and only_fp["ci_low"] == 0.0 and only_fp["ci_high"] > 0
    perfect = f1_summary(7, 0, 0)
    assert perfect["value"] == 1.0 and perfect["ci_high"] == 1.0


def test_arm_metrics_zero_counts_are_none() -> None:
    m = arm_metrics(ArmCounts(total=10, flagged=0, tn=4))
    assert m["labelled"] == 4
    assert m["precision"]["value"] is None
    assert m["recall"]["value"] is None
    assert m["f1"]["value"] is None
    _dumps(m)


def test_arm_metrics_values() -> None:
    m = arm_metrics(ArmCounts(total=1000, flagged=60, tp=40, fp=10, fn=20, tn=500))
    assert m["precision"]["value"] == pytest.approx(0.8)
    assert m["recall"]["value"] == pytest.approx(40 / 60)
    assert m["labelled"] == 570 and m["labelled_fraud"] == 60 and m["labelled_flagged"] == 50


# ------------------------------------------------------------------------------ chi-square


def test_flag_rate_chi2_yates_by_hand() -> None:
    # [[10, 90], [20, 80]]: Yates chi2 = N (|ad - bc| - N/2)^2 / (r1 r2 c1 c2)
    expected = 200 * (abs(10 * 80 - 90 * 20) - 100) ** 2 / (100 * 100 * 30 * 170)
    res = flag_rate_chi2(10, 100, 20, 100)
    assert res["chi2"] == pytest.approx(expected) == pytest.approx(3.176470588)
    assert res["p_value"] == pytest.approx(sps.chi2.sf(expected, 1))
    assert res["p_value"] == pytest.approx(0.0747059, abs=1e-6)


def test_flag_rate_chi2_degenerate_tables_are_none() -> None:
    none = {"chi2": None, "p_value": None}
    assert flag_rate_chi2(0, 100, 0, 80) == none  # nobody flagged: a zero column
    assert flag_rate_chi2(5, 5, 7, 7) == none  # everybody flagged
    assert flag_rate_chi2(3, 50, 0, 0) == none  # challenger has no traffic: a zero row
    assert flag_rate_chi2(0, 0, 0, 0) == none
    with pytest.raises(ValueError):
        flag_rate_chi2(6, 5, 1, 5)


# --------------------------------------------------------------------------- sample ratio


def test_srm_flags_5000_vs_4000() -> None:
    res = sample_ratio_check(5000, 4000, 0.5)
    assert res["chi2"] == pytest.approx(2 * 500**2 / 4500)  # 111.1
    assert res["p_value"] < 1e-20
    assert res["mismatch"] is True
    assert res["observed_share_b"] == pytest.approx(4000 / 9000)


def test_srm_passes_5000_vs_4990() -> None:
    res = sample_ratio_check(5000, 4990, 0.5)
    assert res["chi2"] == pytest.approx(2 * 5**2 / 4995)
    assert res["p_value"] == pytest.approx(0.9203, abs=1e-4)
    assert res["mismatch"] is False


def test_srm_uneven_share_and_alpha() -> None:
    # 10% challenger: 9000 vs 1000 is exactly on target
    assert sample_ratio_check(9000, 1000, 0.1)["p_value"] == pytest.approx(1.0)
    # 9000 vs 1100: expected 9090 and 1010, so chi2 = 90^2/9090 + 90^2/1010 = 8.91
    res = sample_ratio_check(9000, 1100, 0.1)
    assert res["chi2"] == pytest.approx(90**2 / 9090 + 90**2 / 1010)
    assert res["p_value"] == pytest.approx(sps.chi2.sf(res["chi2"], 1))
    assert res["mismatch"] is False  # p ~ 0.0028, not below the 0.001 default
    assert sample_ratio_check(9000, 1100, 0.1, alpha=0.01)["mismatch"] is True


def test_srm_edges() -> None:
    res = sample_ratio_check(0, 0, 0.5)
    assert res["p_value"] is None and res["mismatch"] is False
    _dumps(res)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            sample_ratio_check(10, 10, bad)


# ------------------------------------------------------------------------------- mSPRT


def test_msprt_closed_form_matches_numerical_mixture() -> None:
    """Lambda = integral of the normal likelihood ratio over the N(0, tau^2) prior."""
    xa, na, xb, nb, tau = 160, 200, 140, 210, 0.1
    res = msprt_two_proportions(xa, na, xb, nb, tau=tau, alpha=0.05)
    est, var = res["estimate"], res["std_error"] ** 2
    assert est == pytest.approx(xb / nb - xa / na)
    pa, pb = (xa + 1) / (na + 2), (xb + 1) / (nb + 2)
    assert var == pytest.approx(pa * (1 - pa) / na + pb * (1 - pb) / nb)

    def integrand(theta: float) -> float:
        ratio = math.exp((-(est - theta) ** 2 + est**2) / (2 * var))
        return ratio * sps.norm.pdf(theta, scale=tau)

    lam, _ = integrate.quad(integrand, -1, 1, points=[0.0, est], epsabs=1e-12)
    assert res["p_value"] == pytest.approx(min(1.0, 1 / lam), rel=1e-6)
    assert res["p_value"] < 1.0  # this one is informative, not capped


def test_msprt_p_value_and_sequence_agree() -> None:
    """p <= alpha exactly when the confidence sequence excludes 0 (same variance)."""
    for xa, xb in ((400, 300), (400, 380), (400, 360), (400, 350), (400, 345), (400, 400)):
        res = msprt_two_proportions(xa, 500, xb, 500, tau=0.1, alpha=0.05)
        excludes_zero = res["ci_low"] > 0 or res["ci_high"] < 0
        assert (res["p_value"] <= 0.05) == excludes_zero
        # the bound is where Lambda(theta0) = 1/alpha
        edge = msprt_two_proportions(xa, 500, xb, 500, tau=0.1, alpha=0.05,
                                     theta0=res["ci_high"])
        assert edge["p_value"] == pytest.approx(0.05, rel=1e-9)


def test_msprt_sequence_is_wider_than_fixed_horizon_ci() -> None:
    res = msprt_two_proportions(4000, 5000, 4005, 5000, tau=0.1, alpha=0.05)
    fixed_half = 1.96 * res["std_error"]
    assert res["ci_high"] - res["estimate"] > fixed_half


def test_msprt_zero_and_extreme_counts() -> None:
    empty = msprt_two_proportions(0, 0, 5, 10)
    assert all(v is None for v in empty.values())
    # both arms at 100%: the (x+1)/(n+2) variance keeps everything finite
    res = msprt_two_proportions(50, 50, 50, 50)
    assert res["estimate"] == 0.0 and res["p_value"] == 1.0
    assert math.isfinite(res["ci_low"]) and res["ci_low"] < 0 < res["ci_high"]
    res = msprt_two_proportions(0, 40, 40, 40)
    assert res["estimate"] == 1.0 and res["p_value"] < 1e-6
    _dumps(res)
    with pytest.raises(ValueError):
        msprt_two_proportions(11, 10, 1, 10)
    with pytest.raises(ValueError):
        msprt_two_proportions(1, 10, 1, 10, tau=0)


# ------------------------------------------------------------------------------ verdicts


@pytest.mark.parametrize(
    ("low", "high", "higher", "verdict"),
    [
        (0.01, 0.2, True, "challenger_better"),
        (-0.2, -0.01, True, "challenger_worse"),
        (0.01, 0.2, False, "challenger_worse"),
        (-0.2, -0.01, False, "challenger_better"),
        (-0.04, 0.04, True, "no_difference"),
        (-0.05, 0.05, True, "no_difference"),  # margin is inclusive
        (-0.06, 0.01, True, "collecting"),
        (-0.01, 0.051, True, "collecting"),
        (0.0, 0.3, True, "collecting"),  # touching 0 is not excluding it
        (None, None, True, "collecting"),
    ],
)
def test_verdict_rule(low: float | None, high: float | None, higher: bool,
                      verdict: str) -> None:
    assert sequential_verdict(low, high, 100, 100, 30, 0.05, higher) == verdict


def test_verdict_needs_min_trials_in_each_arm() -> None:
    assert sequential_verdict(0.1, 0.3, 29, 1000, 30, 0.05) == "collecting"
    assert sequential_verdict(0.1, 0.3, 30, 30, 30, 0.05) == "challenger_better"


def test_sequential_test_crafted_counts() -> None:
    assert sequential_test(400, 500, 300, 500)["verdict"] == "challenger_worse"
    assert sequential_test(300, 500, 400, 500)["verdict"] == "challenger_better"
    assert sequential_test(300, 500, 400, 500,
                           higher_is_better=False)["verdict"] == "challenger_worse"
    assert sequential_test(4000, 5000, 4005, 5000)["verdict"] == "no_difference"
    assert sequential_test(80, 100, 78, 100)["verdict"] == "collecting"  # too wide yet
    # a huge gap, but only 25 trials per arm: still collecting
    small = sequential_test(24, 25, 5, 25)
    assert small["ci_high"] < 0 and small["verdict"] == "collecting"
    assert sequential_test(24, 25, 5, 25, min_trials=20)["verdict"] == "challenger_worse"
    # a tighter margin needs more data for no_difference
    assert sequential_test(4000, 5000, 4005, 5000, margin=0.02)["verdict"] == "collecting"


# ------------------------------------------------------------------- inputs and settings


def test_arm_counts_validation() -> None:
    with pytest.raises(ValueError):
        ArmCounts(total=5, flagged=6)
    with pytest.raises(ValueError):
        ArmCounts(total=5, flagged=1, tp=-1)
    with pytest.raises(ValueError):
        ArmCounts(total=5.0, flagged=1)  # type: ignore[arg-type]
    assert ArmCounts(total=5, flagged=1, tp=1, fp=0, fn=2, tn=1).labelled == 4


def test_settings_defaults_and_validation() -> None:
    s = StatsSettings()
    assert (s.confidence, s.srm_alpha, s.sequential_alpha) == (0.95, 0.001, 0.05)
    assert (s.mixture_tau, s.min_labelled_per_arm, s.equivalence_margin) == (0.1, 30, 0.05)
    assert s.primary_metric == "recall"
    with pytest.raises(ValidationError):
        StatsSettings(primary_metric="f1")
    with pytest.raises(ValidationError):
        StatsSettings(confidence=1.0)
    with pytest.raises(ValidationError):
        StatsSettings(srm_alfa=0.01)  # typo: extra keys are rejected


def test_metric_counts() -> None:
    arm = ArmCounts(total=100, flagged=10, tp=7, fp=3, fn=2, tn=50)
    assert metric_counts(arm, "recall") == (7, 9)
    assert metric_counts(arm, "precision") == (7, 10)
    with pytest.raises(ValueError):
        metric_counts(arm, "f1")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the report


def _arms(a: ArmCounts, b: ArmCounts) -> dict[str, ArmCounts]:
    return {"model_a": a, "model_b": b}


def test_report_shape_and_values() -> None:
    a = ArmCounts(total=9000, flagged=450, tp=400, fp=40, fn=100, tn=2000)
    b = ArmCounts(total=1000, flagged=40, tp=30, fp=8, fn=20, tn=200)
    report = experiment_report(_arms(a, b), share_b=0.1, settings=StatsSettings())
    _dumps(report)
    assert set(report) == {"confidence", "per_arm", "flag_rate_chi2", "sample_ratio", "primary"}
    assert set(report["per_arm"]) == {"model_a", "model_b"}
    for arm in report["per_arm"].values():
        for metric in ("precision", "recall", "f1"):
            assert set(arm[metric]) == {"value", "ci_low", "ci_high", "n"}
    assert report["per_arm"]["model_a"]["recall"]["value"] == pytest.approx(0.8)
    assert report["flag_rate_chi2"] == flag_rate_chi2(450, 9000, 40, 1000)
    assert report["sample_ratio"]["mismatch"] is False
    p = report["primary"]
    assert p["metric"] == "recall"
    assert (p["successes_a"], p["trials_a"], p["successes_b"], p["trials_b"]) == (400, 500, 30, 50)
    assert p["estimate"] == pytest.approx(0.6 - 0.8)
    assert p["verdict"] in {"collecting", "challenger_worse"}
    assert p["verdict"] == sequential_test(400, 500, 30, 50)["verdict"]


def test_report_precision_primary() -> None:
    a = ArmCounts(total=5000, flagged=600, tp=450, fp=150, fn=50, tn=3000)
    b = ArmCounts(total=5000, flagged=500, tp=450, fp=50, fn=50, tn=3000)
    report = experiment_report(_arms(a, b), 0.5, StatsSettings(primary_metric="precision"))
    p = report["primary"]
    assert p["metric"] == "precision"
    assert (p["trials_a"], p["trials_b"]) == (600, 500)
    assert p["verdict"] == "challenger_better"  # 0.9 vs 0.75


def test_report_all_zero_is_json_clean() -> None:
    zero = ArmCounts(total=0, flagged=0)
    report = experiment_report(_arms(zero, zero), 0.5)
    text = _dumps(report)
    assert "NaN" not in text and "Infinity" not in text
    assert report["primary"]["verdict"] == "collecting"
    assert report["primary"]["estimate"] is None
    assert report["flag_rate_chi2"] == {"chi2": None, "p_value": None}
    assert report["sample_ratio"]["p_value"] is None
    assert report["per_arm"]["model_a"]["f1"]["value"] is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (ArmCounts(10, 10, tp=10), ArmCounts(10, 10, tp=10)),  # all flagged, all fraud
        (ArmCounts(10, 0, tn=10), ArmCounts(0, 0)),  # challenger got nothing
        (ArmCounts(100, 5, fp=5), ArmCounts(100, 0, fn=3)),  # no true positives
        (ArmCounts(100, 0), ArmCounts(100, 0)),  # no labels, nobody flagged
    ],
)
def test_report_degenerate_counts_are_json_clean(a: ArmCounts, b: ArmCounts) -> None:
    _dumps(experiment_report(_arms(a, b), 0.5))


def test_report_requires_both_arms() -> None:
    with pytest.raises(ValueError):
        experiment_report({"model_a": ArmCounts(1, 0)}, 0.5)

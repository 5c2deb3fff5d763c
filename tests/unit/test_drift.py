"""Drift: PSI and KS against a stored reference, verdicts on the generator's shift knob."""

import json

import numpy as np
import pytest
from scipy.stats import ks_2samp, kstwobign

from fraud.api.responses import DriftResponse, arm_drift
from fraud.config import DataConfig, DriftSettings, GeneratorConfig
from fraud.drift import (
    SKETCH_LEVELS,
    DriftMonitor,
    build_reference,
    compare,
    feature_reference,
    ks,
    psi,
)
from fraud.schema import FEATURE_NAMES
from training.data import generate, load_splits

WINDOW = DriftSettings().window
J = {name: j for j, name in enumerate(FEATURE_NAMES)}


def _matrix(df):
    return df[list(FEATURE_NAMES)].to_numpy(np.float64)


@pytest.fixture(scope="module")
def reference():
    """What training stores: the reference of the default data's training split."""
    return build_reference(_matrix(load_splits(DataConfig()).train))


def _pool(shift, windows, seed):
    return _matrix(generate(GeneratorConfig(n_rows=windows * WINDOW, shift=shift), seed))


def _flag_rates(reference, X):
    """Per feature: the share of disjoint windows of X judged drifting; and of any feature."""
    verdicts = []
    for start in range(0, len(X) - WINDOW + 1, WINDOW):
        out = compare(reference, X[start:start + WINDOW], DriftSettings())
        verdicts.append([out["features"][n]["drift"] for n in FEATURE_NAMES])
    v = np.array(verdicts)
    return dict(zip(FEATURE_NAMES, v.mean(axis=0), strict=True)), float(v.any(axis=1).mean())


def test_psi_is_the_textbook_formula_on_deciles():
    ref = feature_reference(np.repeat(np.arange(10.0), 100))  # ten equal bins: 0, 1, ..., 9
    assert ref["edges"] == list(np.arange(9.0)) and ref["proportions"] == [0.1] * 10
    live = np.repeat(np.arange(10.0), [300, 100, 100, 100, 100, 100, 100, 100, 0, 0])
    q = (np.array([300, 100, 100, 100, 100, 100, 100, 100, 0, 0]) + 0.5) / (1000 + 5)
    assert psi(ref, live) == pytest.approx(float(np.sum((q - 0.1) * np.log(q / 0.1))), rel=1e-12)
    same = np.repeat(np.arange(10.0), 100)
    assert psi(ref, same) == pytest.approx(0.0, abs=1e-12)


def test_reference_bins_are_never_empty_and_json_ready(reference):
    json.dumps(reference, allow_nan=False)
    for name, ref in reference["features"].items():
        p = np.array(ref["proportions"])
        assert (p > 0).all() and p.sum() == pytest.approx(1.0), name
        assert len(p) == len(ref["edges"]) + 1 <= 10
        assert ref["cdf_lt"][0] == 0 and ref["cdf_le"][-1] == 1
    assert len(reference["features"]["is_international"]["proportions"]) == 2


def test_ks_matches_scipy_exactly_when_discrete_and_within_the_sketch_bound(reference):
    rng = np.random.default_rng(1)
    train, live = rng.poisson(2.0, 20_000).astype(float), rng.poisson(2.4, 700).astype(float)
    exact = ks_2samp(train, live).statistic
    assert ks(feature_reference(train), live) == pytest.approx(exact, abs=1e-12)
    train, live = rng.lognormal(3, 1, 20_000), rng.lognormal(3.1, 1, 700)
    exact = ks_2samp(train, live).statistic
    assert exact - 1 / SKETCH_LEVELS <= ks(feature_reference(train), live) <= exact + 1e-12
    below = np.full(50, train.min() - 1)  # all live rows below every training row
    assert ks(feature_reference(train), below) == ks_2samp(train, below).statistic == 1.0


def test_ks_sees_a_change_inside_the_psi_bins():
    """Every decile keeps its share (PSI ~ 0) but each live row sits at its decile's top."""
    rng = np.random.default_rng(2)
    train = rng.uniform(0, 1, 72_000)
    X = np.tile(train[:WINDOW, None], (1, len(FEATURE_NAMES)))
    reference = build_reference(np.tile(train[:, None], (1, len(FEATURE_NAMES))))
    edges = np.r_[reference["features"]["amount"]["edges"], train.max()]
    X[:, J["amount"]] = np.repeat(edges, WINDOW // len(edges))
    out = compare(reference, X, DriftSettings())["features"]["amount"]
    assert out["psi"] < out["psi_critical"] and out["ks"] > 0.08
    assert out["drift"] is True


def test_critical_values():
    s = DriftSettings()
    n, m = 1000, 72_000
    assert s.ks_critical(n, m) == pytest.approx(
        kstwobign.isf(s.alpha) * np.sqrt((n + m) / (n * m)), rel=1e-3)
    assert s.psi_critical(2 * n, m, 10) < s.psi_critical(n, m, 10) < s.psi_threshold
    with pytest.raises(ValueError, match="min_rows 50 is too small"):
        DriftSettings(min_rows=50)
    with pytest.raises(ValueError, match="min_rows <= window"):
        DriftSettings(window=100, min_rows=200)


def test_unshifted_traffic_stays_quiet(reference):
    windows = 400
    per_feature, any_feature = _flag_rates(reference, _pool(0.0, windows, 101))
    # 14 tests per window (PSI and KS per feature) at alpha = 0.001: Bonferroni bounds the
    # window's false-alarm rate by 1.4%; 2% leaves room for the sampling error of 400 windows.
    assert any_feature <= 0.02, per_feature
    assert max(per_feature.values()) <= 0.01, per_feature


def test_shifted_traffic_flags_every_feature_the_knob_moves(reference):
    per_feature, any_feature = _flag_rates(reference, _pool(1.0, 40, 102))
    assert any_feature == 1.0
    assert min(per_feature.values()) >= 0.6, per_feature


def test_only_the_shifted_features_are_flagged(reference):
    X = _pool(0.0, 40, 103)
    moved = ("merchant_risk", "card_age_days", "num_recent_txns")
    shifted = _pool(1.0, 40, 104)
    for name in moved:
        X[:, J[name]] = shifted[:, J[name]]
    per_feature, _ = _flag_rates(reference, X)
    for name in FEATURE_NAMES:
        if name in moved:
            assert per_feature[name] == 1.0, (name, per_feature)
        else:
            assert per_feature[name] <= 0.05, (name, per_feature)


def test_monitor_window_is_bounded_and_judges_only_from_min_rows(reference):
    settings = DriftSettings(window=600, min_rows=400)
    monitor = DriftMonitor(reference, settings)
    monitor.observe(_pool(1.0, 1, 105)[:300])
    early = monitor.report()
    assert early["ready"] is False and early["drift"] is None and early["rows"] == 300
    assert all(f["drift"] is None for f in early["features"].values())
    monitor.observe(_pool(1.0, 1, 106)[:300])
    assert monitor.report()["drift"] is True
    monitor.observe(_pool(0.0, 1, 107)[:600])  # the shifted rows fall out of the window
    late = monitor.report()
    assert len(monitor) == 600 and late["rows"] == 600
    assert late["window"] == 600 and late["min_rows"] == 400
    assert sum(f["drift"] for f in late["features"].values()) <= 1


def test_a_reference_of_another_version_is_refused(reference):
    with pytest.raises(ValueError, match="retrain"):
        compare({**reference, "version": 0}, np.zeros((600, len(FEATURE_NAMES))),
                DriftSettings())


def test_monitor_reports_fit_the_response_model(reference):
    empty, full = DriftMonitor(reference), DriftMonitor(reference)
    full.observe(_pool(0.0, 1, 108))
    body = DriftResponse(arms={"model_a": arm_drift("fraud_rf:a", empty.report()),
                               "model_b": arm_drift("fraud_hgb:b", full.report())})
    dumped = body.model_dump()
    assert dumped["arms"]["model_a"]["drift"] is None
    assert dumped["arms"]["model_b"]["ready"] is True
    assert set(dumped["arms"]["model_b"]["features"]) == set(FEATURE_NAMES)


def test_a_category_is_compared_share_by_share():
    from fraud.drift import category_reference, psi

    rng = np.random.default_rng(3)
    train = rng.choice(3, size=20_000, p=[0.7, 0.2, 0.1]).astype(float)
    ref = category_reference(train, 4, ["web", "app", "pos", "other"])
    assert ref["kind"] == "category" and ref["labels"][-1] == "other"
    assert abs(sum(ref["proportions"]) - 1) < 1e-9 and ref["proportions"][3] > 0
    same = rng.choice(3, size=2_000, p=[0.7, 0.2, 0.1]).astype(float)
    moved = rng.choice(3, size=2_000, p=[0.3, 0.3, 0.4]).astype(float)
    assert psi(ref, same) < 0.01
    assert psi(ref, moved) > 0.25
    unseen = np.full(500, 3.0)  # only 'other', never seen in training: large, finite
    assert 1 < psi(ref, unseen) < float("inf")

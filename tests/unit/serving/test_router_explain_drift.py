"""What the router holds per arm: a scorer, an explainer (tree ensembles only) and a drift
window (models with a training reference only), and what it does with them."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from fraud.config import ABConfig, DriftSettings, GeneratorConfig
from fraud.drift import DriftMonitor, build_reference
from fraud.experiment.decisions import ArmModel
from fraud.explain import TreeExplainer
from fraud.schema import ARMS, FEATURE_NAMES
from fraud.serving.explain_drift import (
    drift_monitor,
    explainer,
    observe,
    publish_drift,
    publish_drift_every,
)
from fraud.serving.router import Router
from training.data import generate

SETTINGS = DriftSettings(window=2000)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    df = generate(GeneratorConfig(n_rows=3000, fraud_rate=0.2), seed=5)
    return df[list(FEATURE_NAMES)].to_numpy(np.float64), df["is_fraud"].to_numpy()


@pytest.fixture(scope="module")
def forest(data: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(*data)


@pytest.fixture(scope="module")
def linear(data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(*data)


@pytest.fixture(scope="module")
def models(data: tuple[np.ndarray, np.ndarray]) -> dict[str, ArmModel]:
    reference = build_reference(data[0])
    return {"model_a": ArmModel("model_a", "rf:1", 0.5, {"drift_reference": reference}),
            "model_b": ArmModel("model_b", "lr:2", 0.5, {})}  # trained before references


class Gauges:
    """RouterMetrics' calls, kept; `fail` arms raise."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.rows: list[int] = []
        self.drift: dict[str, dict[str, Any]] = {}
        self.fail = fail

    def observe(self, rows: int) -> None:
        self.rows.append(rows)

    def publish_drift(self, arm: str, report: dict[str, Any]) -> None:
        if arm in self.fail:
            raise RuntimeError("gauge broke")
        self.drift[arm] = report


def routed(X: np.ndarray, arms: list[int]) -> np.ndarray:
    return np.column_stack([np.array(arms, dtype=np.float64), X[:len(arms)]])


def test_only_tree_ensembles_get_an_explainer(forest: Any, linear: Any) -> None:
    made = explainer(forest, reasons=2)
    assert isinstance(made, TreeExplainer) and made.top == 2
    assert explainer(linear, reasons=2) is None


def test_only_models_with_a_reference_get_a_drift_window(models: dict[str, ArmModel]) -> None:
    window = drift_monitor(models["model_a"], SETTINGS)
    assert isinstance(window, DriftMonitor) and window.settings == SETTINGS
    assert drift_monitor(models["model_b"], SETTINGS) is None


def test_each_row_joins_its_own_arms_window(data: Any, models: dict[str, ArmModel]) -> None:
    a = drift_monitor(models["model_a"], SETTINGS)
    b = DriftMonitor(models["model_a"].metadata["drift_reference"], SETTINGS)
    observe({"model_a": a, "model_b": b}, routed(data[0], [0, 1, 1, 0, 1]))
    assert (len(a), len(b)) == (2, 3)
    observe({"model_a": a, "model_b": None}, routed(data[0], [1, 1]))  # no window: skipped
    assert len(a) == 2


def test_a_failing_arms_gauges_do_not_stop_the_others(models: dict[str, ArmModel],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    windows = {arm: drift_monitor(models["model_a"], SETTINGS) for arm in ARMS}
    gauges = Gauges(fail=("model_a",))
    with caplog.at_level(logging.ERROR, logger="fraudserve"):
        publish_drift(gauges, windows)
    assert set(gauges.drift) == {"model_b"} and gauges.drift["model_b"]["ready"] is False
    assert "drift gauges of model_a failed" in caplog.text


def test_drift_gauges_refresh_every_interval(models: dict[str, ArmModel]) -> None:
    slept: list[float] = []
    gauges = Gauges()

    def sleep(seconds: float) -> None:
        if len(slept) == 3:
            raise StopIteration  # end the endless loop
        slept.append(seconds)

    with pytest.raises(StopIteration):
        publish_drift_every(7.5, gauges, {"model_a": drift_monitor(models["model_a"],
                                                                   SETTINGS)}, sleep)
    assert slept == [7.5] * 3 and set(gauges.drift) == {"model_a"}


def test_the_router_scores_each_row_with_its_arm_and_watches_its_drift(
        data: Any, forest: Any, linear: Any, models: dict[str, ArmModel]) -> None:
    gauges = Gauges()
    router = Router(ABConfig(), models, [forest, linear], gauges)
    assert router.explainers["model_a"] is not None and router.explainers["model_b"] is None
    assert router.drift["model_b"] is None
    X = data[0]
    rows = routed(X, [0, 1, 0])
    out = router.score(rows)
    assert out.shape == (3,) and gauges.rows == [3]
    assert out[1] == pytest.approx(linear.predict_proba(X[1:2])[0, 1])
    assert out[[0, 2]] == pytest.approx(forest.predict_proba(X[[0, 2]])[:, 1])
    assert len(router.drift["model_a"]) == 2


def test_in_shadow_mode_the_router_scores_every_row_with_both(
        data: Any, forest: Any, linear: Any, models: dict[str, ArmModel]) -> None:
    cfg = ABConfig(shadow={"enabled": True})
    router = Router(cfg, models, [forest, linear], Gauges())
    out = router.score(routed(data[0], [0, 1]))
    assert out.shape == (2, 2)
    assert out[0, 1] == pytest.approx(linear.predict_proba(data[0][:1])[0, 1])  # its shadow

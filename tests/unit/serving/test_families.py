"""Model families: XGBoost and LightGBM trained, saved through their BentoML modules, loaded
back with predict_proba, explained by their own exact contributions; a missing extra says
which pip command installs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fraud.config import ModelSpec
from fraud.explain import TreeExplainer
from fraud.schema import FEATURE_NAMES
from fraud.serving.families import BoosterClassifier, MissingLibrary, framework, require
from fraud.serving.fastpredict import scorer
from training.estimators import build_estimator, family

ROOT = Path(__file__).resolve().parents[3]
xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.random((2000, len(FEATURE_NAMES))) * [500, 23, 1, 900, 800, 10, 1]
    X[:, [1, 5, 6]] = np.round(X[:, [1, 5, 6]])
    logit = 3 * X[:, 2] + X[:, 6] - X[:, 3] / 300 - 1.5
    y = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _fit(estimator: str, data):
    spec = ModelSpec(name="m", estimator=estimator, params={"n_estimators": 40,
                                                             "random_state": 0})
    return build_estimator(spec).fit(*data)


@pytest.mark.parametrize("estimator", ["xgboost", "lightgbm"])
def test_contributions_are_exact_and_explain_the_score(estimator, data):
    est = _fit(estimator, data)
    explainer = TreeExplainer(est, top=3)
    for x in data[0][:20]:
        e = explainer.explain(x)
        assert e.scale == "log_odds"
        assert e.output == pytest.approx(e.base_value + sum(e.contributions.values()))
        assert e.probability == pytest.approx(est.predict_proba(x[None, :])[0, 1], abs=1e-6)
        assert len(e.reasons) == 3 and set(e.contributions) == set(FEATURE_NAMES)


def test_a_lightgbm_booster_scores_as_its_classifier(data):
    est = _fit("lightgbm", data)
    wrapped = BoosterClassifier(est.booster_)
    np.testing.assert_allclose(wrapped.predict_proba(data[0][:50]),
                               est.predict_proba(data[0][:50]), atol=1e-12)
    assert TreeExplainer(wrapped).explain(data[0][0]).scale == "log_odds"


@pytest.mark.parametrize("estimator", ["xgboost", "lightgbm"])
def test_the_fast_scorer_is_the_librarys_own_predict(estimator, data):
    est = _fit(estimator, data)
    np.testing.assert_array_equal(scorer(est)(data[0][:5]), est.predict_proba(data[0][:5])[:, 1])


def test_families_and_frameworks():
    assert [family(e) for e in ("random_forest", "xgboost", "lightgbm")] == [
        "sklearn", "xgboost", "lightgbm"]
    assert framework("bentoml.xgboost") == "xgboost"
    assert framework("_bentoml_impl.frameworks.lightgbm") == "lightgbm"
    with pytest.raises(ValueError, match=r"cannot serve a model saved with 'bentoml\.pytorch'"):
        framework("bentoml.pytorch")


def test_a_missing_extra_names_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "xgboost" else real(name, *a))
    with pytest.raises(MissingLibrary, match=r"pip install '\.\[xgboost\]'"):
        require("xgboost")
    with pytest.raises(ValueError, match=r"needs the xgboost extra.*pip install '\.\[xgboost\]'"):
        ModelSpec(name="x", estimator="xgboost")
    ModelSpec(name="y", estimator="lightgbm")


ROUND_TRIP = """
import json, sys
import bentoml, numpy as np
from fraud.config import ModelSpec
from fraud.serving.families import load_estimator
from training.estimators import build_estimator
rng = np.random.default_rng(1)
X, y = rng.random((300, 7)), (rng.random(300) < 0.3).astype(int)
out = {}
for name in ("xgboost", "lightgbm", "random_forest"):
    est = build_estimator(ModelSpec(name=name, estimator=name,
                                    params={"n_estimators": 10, "random_state": 0})).fit(X, y)
    if name == "xgboost":
        saved = bentoml.xgboost.save_model(name, est, signatures={"predict_proba": {}})
    elif name == "lightgbm":
        saved = bentoml.lightgbm.save_model(name, est.booster_, signatures={"predict": {}})
    else:
        saved = bentoml.sklearn.save_model(name, est)
    back = load_estimator(str(saved.tag))
    out[name] = float(np.abs(back.predict_proba(X)[:, 1] - est.predict_proba(X)[:, 1]).max())
print(json.dumps(out))
"""


def test_each_family_round_trips_through_its_bentoml_module(tmp_path):
    out = subprocess.run([sys.executable, "-c", ROUND_TRIP], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True,
                         env={"BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true",
                              "PATH": "/usr/bin:/bin"})
    diffs = json.loads(out.stdout.strip().splitlines()[-1])
    assert diffs == {"xgboost": pytest.approx(0, abs=1e-7),
                     "lightgbm": pytest.approx(0, abs=1e-12), "random_forest": 0.0}

"""The compiled tree scorer equals scikit-learn's predict_proba, edge values included."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from fraud.config import GeneratorConfig
from fraud.schema import FEATURE_NAMES, LABEL
from fraud.serving.fastpredict import compile_boosting, compile_forest, forest_direct, scorer
from training.data import generate


@pytest.fixture(scope="module")
def data():
    df = generate(GeneratorConfig(n_rows=4000, fraud_rate=0.1), 3)
    return df[list(FEATURE_NAMES)].to_numpy(float), df[LABEL].to_numpy()


def _edge_rows(X, thresholds, features):
    """Rows whose values sit exactly on split thresholds (the <= boundary)."""
    rows = np.repeat(X[:50], 1, axis=0).copy()
    for i, (f, t) in enumerate(zip(features[:50], thresholds[:50], strict=False)):
        rows[i, f] = t
    return rows


def test_forest(data):
    X, y = data
    est = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X, y)
    fast = compile_forest(est)
    t = est.estimators_[0].tree_
    inner = t.children_left != -1
    edges = _edge_rows(X, t.threshold[inner], t.feature[inner])
    for rows in (X[:500], X[:1], edges):
        np.testing.assert_allclose(fast(rows), est.predict_proba(rows)[:, 1], atol=1e-12)


def test_boosting(data):
    X, y = data
    est = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, y)
    fast = compile_boosting(est)
    nodes = est._predictors[0][0].nodes
    inner = nodes["is_leaf"] == 0
    edges = _edge_rows(X, nodes["num_threshold"][inner], nodes["feature_idx"][inner])
    for rows in (X[:500], X[:1], edges):
        np.testing.assert_allclose(fast(rows), est.predict_proba(rows)[:, 1], atol=1e-12)


def test_scorer_falls_back_for_big_batches_and_other_models(data):
    X, y = data
    lr = LogisticRegression(max_iter=500).fit(X, y)
    np.testing.assert_allclose(scorer(lr)(X[:3]), lr.predict_proba(X[:3])[:, 1])
    rf = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    score = scorer(rf)
    for n in (1, 256, 257, 1000):  # the compiled walk up to FOREST_MAX_ROWS (256)
        np.testing.assert_allclose(score(X[:n]), rf.predict_proba(X[:n])[:, 1], atol=1e-12)


def test_a_forests_large_batches_give_exactly_its_predict_proba(data):
    X, y = data
    rf = RandomForestClassifier(n_estimators=25, random_state=0).fit(X, y)
    direct = forest_direct(rf)
    for n in (1, 129, 2000):  # the same sums in the same order: equal, not merely close
        assert np.array_equal(direct(X[:n]), rf.predict_proba(X[:n])[:, 1])
    assert np.array_equal(scorer(rf)(X[:1000]), rf.predict_proba(X[:1000])[:, 1])

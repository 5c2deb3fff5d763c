"""Path-dependent TreeSHAP: exact against brute force, additive to the score, right direction."""

from itertools import combinations
from math import factorial

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from fraud.api.responses import ExplainResponse, model_explanation
from fraud.config import GeneratorConfig
from fraud.explain import ExplainUnsupported, TreeExplainer, reason
from fraud.schema import FEATURE_NAMES, FEATURES_BY_NAME, LABEL
from training.data import generate

M = len(FEATURE_NAMES)
J = {name: j for j, name in enumerate(FEATURE_NAMES)}


@pytest.fixture(scope="module")
def data():
    df = generate(GeneratorConfig(n_rows=20_000, fraud_rate=0.1), 3)
    return df[list(FEATURE_NAMES)].to_numpy(float), df[LABEL].to_numpy()


@pytest.fixture(scope="module")
def forest(data):
    X, y = data
    return RandomForestClassifier(n_estimators=30, max_depth=8, min_samples_leaf=2,
                                  class_weight="balanced_subsample", random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def boosting(data):
    X, y = data
    return HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15,
                                          early_stopping=False, random_state=0).fit(X, y)


def _trees(est):
    """(feature, threshold, left, right, cover, value) per tree, straight from scikit-learn."""
    if isinstance(est, RandomForestClassifier):
        for t in (e.tree_ for e in est.estimators_):
            v = t.value[:, 0, :]
            yield (t.feature, t.threshold, t.children_left, t.children_right, t.n_node_samples,
                   v[:, 1] / v.sum(axis=1) / len(est.estimators_))
    else:
        for (p,) in est._predictors:
            n = p.nodes
            yield (np.where(n["is_leaf"], -2, n["feature_idx"]), n["num_threshold"],
                   np.where(n["is_leaf"], -1, n["left"].astype(np.int64)), n["right"],
                   n["count"], n["value"])


def _expected(tree, x, known, node=0):
    """Lundberg et al.'s EXPVALUE: follow x on known features, else average by cover."""
    feature, threshold, left, right, cover, value = tree
    if left[node] == -1:
        return value[node]
    a, b = left[node], right[node]
    if feature[node] in known:
        return _expected(tree, x, known, a if x[feature[node]] <= threshold[node] else b)
    return (cover[a] * _expected(tree, x, known, a)
            + cover[b] * _expected(tree, x, known, b)) / cover[node]


def _brute_force(est, x):
    """Shapley values by enumerating all 2^M coalitions (independent of fraud.explain)."""
    if isinstance(est, RandomForestClassifier):
        x = x.astype(np.float32).astype(np.float64)
    trees = list(_trees(est))
    v = {}
    for k in range(M + 1):
        for s in combinations(range(M), k):
            v[s] = sum(_expected(t, x, set(s)) for t in trees)
    phi = np.zeros(M)
    for j in range(M):
        rest = [i for i in range(M) if i != j]
        for k in range(M):
            w = factorial(k) * factorial(M - k - 1) / factorial(M)
            for s in combinations(rest, k):
                phi[j] += w * (v[tuple(sorted((*s, j)))] - v[s])
    return v[()], phi


@pytest.mark.parametrize("model", ["forest", "boosting"])
def test_equals_brute_force_shapley(model, data, request):
    est = request.getfixturevalue(model)
    explainer = TreeExplainer(est)
    X, y = data
    for x in (X[np.flatnonzero(y == 1)[0]], X[0]):
        base, phi = _brute_force(est, x)
        got = explainer.explain(x)
        offset = explainer.table.offset
        assert got.base_value == pytest.approx(base + offset, abs=1e-9)
        np.testing.assert_allclose(list(got.contributions.values()), phi, atol=1e-9)


def test_contributions_add_up_to_the_score(forest, boosting, data):
    X, _ = data
    rows = X[:200].copy()
    tree = forest.estimators_[0].tree_
    inner = np.flatnonzero(tree.children_left != -1)[:50]
    rows[np.arange(50), tree.feature[inner]] = tree.threshold[inner]  # on the <= boundary
    proba, raw = forest.predict_proba(rows)[:, 1], boosting.decision_function(rows)
    for est, want, scale in ((forest, proba, "probability"), (boosting, raw, "log_odds")):
        explainer = TreeExplainer(est)
        for x, target in zip(rows, want, strict=True):
            e = explainer.explain(x)
            assert e.scale == scale
            assert e.base_value + sum(e.contributions.values()) == pytest.approx(target, abs=1e-9)
            assert e.output == pytest.approx(target, abs=1e-9)
    assert e.probability == pytest.approx(boosting.predict_proba(rows[-1:])[0, 1], abs=1e-12)


def test_a_one_split_model_has_hand_computable_values():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 100, size=(400, M))
    y = ((X[:, J["card_age_days"]] < 30) & (rng.random(400) < 0.8)).astype(int)
    stump = RandomForestClassifier(n_estimators=1, max_depth=1, bootstrap=False,
                                   max_features=None, random_state=0).fit(X, y)
    t = stump.estimators_[0].tree_
    young = X[:, t.feature[0]] <= t.threshold[0]
    e = TreeExplainer(stump).explain(np.r_[X[young][0]])
    assert e.base_value == pytest.approx(y.mean(), abs=1e-12)
    assert e.contributions[FEATURE_NAMES[t.feature[0]]] == pytest.approx(
        y[young].mean() - y.mean(), abs=1e-12)
    assert sum(abs(c) for n, c in e.contributions.items()
               if n != FEATURE_NAMES[t.feature[0]]) == 0


TYPICAL = {"amount": 40.0, "hour": 14, "merchant_risk": 0.2, "card_age_days": 900,
           "distance_km": 6.0, "num_recent_txns": 1, "is_international": 0}
RISKY = {  # each scenario of the generator, on top of the typical row: (changes, features)
    "new_card_burst": ({"card_age_days": 4, "num_recent_txns": 9, "amount": 180.0},
                       ("card_age_days", "num_recent_txns")),
    "risky_merchant_night": ({"merchant_risk": 0.9, "hour": 2, "amount": 250.0},
                             ("merchant_risk", "hour")),
    "foreign_far": ({"is_international": 1, "distance_km": 2500.0, "amount": 120.0},
                    ("is_international", "distance_km")),
}


@pytest.mark.parametrize("model", ["forest", "boosting"])
@pytest.mark.parametrize("scenario", sorted(RISKY))
def test_direction_on_constructed_rows(model, scenario, request):
    explainer = TreeExplainer(request.getfixturevalue(model))
    changes, pushed = RISKY[scenario]
    typical = explainer.explain([TYPICAL[n] for n in FEATURE_NAMES])
    risky = explainer.explain([{**TYPICAL, **changes}[n] for n in FEATURE_NAMES])
    assert risky.probability > typical.probability
    for name in pushed:
        assert risky.contributions[name] > 0, (name, risky.contributions)
        assert risky.contributions[name] > typical.contributions[name]
    assert {r.feature for r in risky.reasons} & set(pushed)
    assert typical.output < typical.base_value  # an ordinary payment scores below average


def test_reason_codes_read_and_rank(forest, data):
    r = reason("card_age_days", 15.0, 0.21, "probability")
    assert r.text == "card is 15 days old: +0.21"
    assert r.description == FEATURES_BY_NAME["card_age_days"].description
    assert reason("amount", 250.0, -1.234, "log_odds").text == "amount is 250: -1.23 log-odds"
    e = TreeExplainer(forest).explain(data[0][5])
    ranked = sorted(e.contributions.values(), key=abs, reverse=True)[:3]
    assert [r.contribution for r in e.reasons] == ranked
    assert all(r.text.endswith(f"{r.contribution:+.2f}") for r in e.reasons)


def test_a_feature_without_phrase_uses_its_schema_description(monkeypatch):
    from fraud import explain

    monkeypatch.delitem(explain.PHRASES, "distance_km")
    text = reason("distance_km", 12.5, 0.05, "probability").text
    described = FEATURES_BY_NAME["distance_km"].description.rstrip(".")
    assert text == f"{described}: 12.5: +0.05"


def test_other_estimators_are_refused(data):
    X, y = data
    with pytest.raises(ExplainUnsupported, match="LogisticRegression"):
        TreeExplainer(LogisticRegression(max_iter=200).fit(X[:500], y[:500]))


def test_response_model_carries_the_decision(forest, boosting, data):
    x = data[0][np.flatnonzero(data[1] == 1)[0]]
    explained = {"model_a": TreeExplainer(forest).explain(x),
                 "model_b": TreeExplainer(boosting).explain(x)}
    entries = [model_explanation(arm, f"{arm}:tag", 0.5, e) for arm, e in explained.items()]
    body = ExplainResponse(model_version="model_a", explanations=entries).model_dump()
    a, b = body["explanations"]
    assert a["fraud_probability"] == pytest.approx(forest.predict_proba(x[None])[0, 1])
    assert a["is_fraud"] == (a["fraud_probability"] >= 0.5)
    assert b["scale"] == "log_odds" and b["output"] == pytest.approx(
        boosting.decision_function(x[None])[0], abs=1e-9)
    assert [r["text"] for r in a["reasons"]] == [r.text for r in explained["model_a"].reasons]


def test_reasons_follow_the_feature_file():
    from fraud.explain import _phrase
    from fraud.features import Feature

    country = Feature("country", "Merchant country.", kind="category", values=("FR", "DE"),
                      unseen="other", reason="merchant in {value}")
    assert _phrase(country)(1.0) == "merchant in DE"
    assert _phrase(country)(2.0) == "merchant in other"
    secure = Feature("is_3ds", "3-D Secure used.", kind="boolean",
                     reason={True: "3-D Secure", False: "no 3-D Secure"})
    assert _phrase(secure)(0.0) == "no 3-D Secure"
    assert _phrase(Feature("x", "X.")) is None
    assert reason("is_international", 1.0, 0.1, "probability").text == (
        "international merchant: +0.10")

"""fraud.stats.paired under label mechanics, expected_loss's direction, and recall at the
champion's flag rate (fraud/stats/operating_point.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from label_rows import make

from fraud.config import StatsSettings
from fraud.stats.aggregates import FIELDS, PairedUsers
from fraud.stats.labels import ArmLabels
from fraud.stats.operating_point import same_flag_rate
from fraud.stats.paired import Costs, paired, paired_look, rule
from fraud.stats.sequential import Memory

S = StatsSettings()


def _pairs(users: int = 200, seed: int = 1, caught_b: float = 0.9) -> PairedUsers:
    """Users with 2 frauds each; A catches 1 of them, B catches more (caught_b)."""
    rng = np.random.default_rng(seed)
    cols = {f: np.zeros(users) for f in FIELDS}
    tp_b = rng.binomial(2, caught_b, users).astype(float)
    cols.update(n=np.full(users, 10.0), mature=np.full(users, 10.0), fraud=np.full(users, 2.0),
                tp_a=np.ones(users), tp_b=tp_b, tp_both=np.minimum(1.0, tp_b),
                flag_a=np.ones(users), flag_b=tp_b, fraud_amount=np.full(users, 200.0),
                caught_amount_a=np.full(users, 100.0), caught_amount_b=100.0 * tp_b)
    return PairedUsers(**cols)


def test_expected_loss_lower_is_better() -> None:
    s = StatsSettings(paired_metric="expected_loss")
    look = paired_look(_pairs(), s, "recall", Costs())
    assert look["metric"] == "expected_loss" and look["higher_is_better"] is False
    assert look["scale"] == "log ratio"
    assert look["estimate"] < 0  # B misses less: its loss is lower...
    assert look["verdict"] == "challenger_better"  # ...so it is better
    assert rule("expected_loss", 0.05)(-3.0, -1.0) == "challenger_better"
    assert rule("recall", 0.05)(-3.0, -1.0) == "challenger_worse"
    recall = paired_look(_pairs(), S, "recall", Costs())
    assert recall["estimate"] > 0 and recall["verdict"] == "challenger_better"


def test_label_bias_in_the_paired_test() -> None:
    decl = make(n=[20.0] * 50, flagged=[5.0] * 50, labelled_declined=[1.5] * 50)
    look = paired_look(_pairs(), S, "recall", Costs(), labels=ArmLabels(decl))
    assert (look["verdict"], look["label_bias"]) == ("label_bias", True)
    block, mem = paired(_pairs(), np.zeros((0, 5)), S, "recall", Costs(), Memory(),
                        labels=ArmLabels(decl))
    assert block["verdict"] == "label_bias" and mem == Memory()
    assert block["test"]["this_look"]["verdict"] == "label_bias"
    json.dumps(block, allow_nan=False)
    reviewed = make(n=[20.0] * 50, flagged=[5.0] * 50, labelled_declined=[5.0] * 50)
    ok = paired_look(_pairs(), S, "recall", Costs(), labels=ArmLabels(reviewed))
    assert ok["label_bias"] is False and ok["verdict"] == "challenger_better"


def test_exploration_makes_the_paired_test_ipw() -> None:
    rng = np.random.default_rng(3)
    k = 300
    explored = rng.binomial(5, 0.5, k).astype(float)  # p = 0.5: weight 2
    fraud_x = rng.binomial(explored.astype(int), 0.6).astype(float)
    u = make(n=[30.0] * k, flagged=[5.0] * k, explored=explored.tolist(),
             explored_w=(2 * explored).tolist(), fraud_approved=[1.0] * k,
             fraud_explored_w=(2 * fraud_x).tolist(), other_flagged=[6.0] * k,
             other_fraud_approved=[1.0] * k, other_fraud_explored_w=(2 * fraud_x).tolist())
    look = paired_look(_pairs(k), S, "recall", Costs(), labels=ArmLabels(u, exploring=True))
    assert look["estimator"] == "inverse propensity"
    # the other model catches every approved fraud and the same explored ones: B - A = 1/F
    f = k * 1.0 + 2 * fraud_x.sum()
    assert look["estimate"] == pytest.approx(k / f)
    amount = paired_look(_pairs(k), S, "amount_recall", Costs(),
                         labels=ArmLabels(u, exploring=True))
    assert amount["verdict"] == "collecting" and "no inverse-propensity" in amount["reason"]


def test_min_fraud_users_in_the_paired_test() -> None:
    few = paired_look(_pairs(users=20), S, "recall", Costs())
    assert few["enough"] is False and few["verdict"] == "collecting"
    assert paired_look(_pairs(users=20), StatsSettings(min_fraud_users_per_arm=20), "recall",
                       Costs())["verdict"] == "challenger_better"


def test_same_flag_rate_reads_mature_rows_only_and_clusters_by_user() -> None:
    rng = np.random.default_rng(5)
    rows = 4000
    user = rng.integers(0, 300, rows).astype(float)
    y = (rng.random(rows) < 0.1).astype(float)
    pa = np.clip(0.5 * y + rng.random(rows) * 0.6, 0, 1)
    pb = np.clip(0.6 * y + rng.random(rows) * 0.6, 0, 1)
    fa = (pa >= 0.7).astype(float)
    mature = (rng.random(rows) < 0.8).astype(float)
    out = same_flag_rate(np.column_stack([pa, pb, fa, mature, y, user]), min_frauds=50)
    assert out is not None and out["clustered"] is True and out["hidden"] is None
    m = mature > 0
    assert out["transactions"] == int(m.sum()) and out["immature"] == int((~m).sum())
    assert out["flag_rate"] == pytest.approx(fa[m].mean())
    t_a = np.quantile(pa[m], 1 - fa[m].mean())
    assert out["recall_a"] == pytest.approx(np.mean(pa[m & (y > 0)] >= t_a))
    assert out["recall_a_ci"][0] < out["recall_a"] < out["recall_a_ci"][1]
    assert out["difference"]["value"] == pytest.approx(out["recall_b"] - out["recall_a"])
    unclustered = same_flag_rate(np.column_stack([pa, pb, fa, mature, y]), min_frauds=50)
    assert unclustered is not None and unclustered["clustered"] is False
    json.dumps(out, allow_nan=False)
    assert same_flag_rate(np.zeros((0, 5))) is None
    none_mature = same_flag_rate(np.column_stack([pa, pb, fa, 0 * mature, y]))
    assert none_mature is not None and none_mature["hidden"].startswith("0 mature")

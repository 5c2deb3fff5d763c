"""fraud.stats.cluster and fraud.stats.ipw: exact values on three users, and the failure cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from label_rows import make, rows, shadow

from fraud.stats import ipw
from fraud.stats.cluster import Ratio, Term, combine, kish, log_ratio_clustered
from fraud.stats.labels import ArmLabels

# ------------------------------------------------------------------------------- cluster


def test_combine_adds_a_users_terms_before_squaring() -> None:
    a = Ratio(np.array([1.0, 2.0]), np.array([2.0, 2.0]))  # R = 0.75, terms (-0.125, 0.125)
    b = Ratio(np.array([2.0, 0.0]), np.array([2.0, 2.0]))  # R = 0.5, terms (0.25, -0.25)
    same = combine([Term(b, 1.0, np.array([7, 8])), Term(a, -1.0, np.array([7, 8]))])
    apart = combine([Term(b, 1.0), Term(a, -1.0)])
    assert same is not None and apart is not None
    # same users: z = (0.375, -0.375), k = 2: 2 * 2 * 0.140625
    assert same == pytest.approx((-0.25, 2 * 2 * 0.375**2, 2))
    # the jackknife agrees there: dropping user 7 moves b - a by -0.75, user 8 by +0.75
    # four distinct users: the delta method says 4/3 * (2 * 0.125^2 + 2 * 0.25^2) = 0.208;
    # dropping one of two users moves a ratio a lot: b - a moves by (-0.25, 0.25, -0.5, 0.5),
    # and the jackknife's 3/4 * 0.625 = 0.469 is the larger
    assert apart == pytest.approx((-0.25, 3 / 4 * 0.625, 4))


def test_combine_clusters_mixed_id_types_and_refuses_one_user() -> None:
    r = Ratio(np.array([1.0]), np.array([2.0]))
    assert combine([Term(r, 1.0, np.array([1]))]) is None  # one user: no variance
    assert combine([]) is None
    assert combine([Term(Ratio(np.zeros(2), np.zeros(2)))]) is None  # undefined ratio
    # 1 and "1" name one user: one cluster, so no variance
    assert combine([Term(r, 1.0, np.array([1])),
                    Term(r, 1.0, np.array(["1"], dtype=object))]) is None


def test_log_ratio_clustered_and_kish() -> None:
    a = Ratio(np.array([1.0, 1.0, 0.0]), np.array([10.0, 10.0, 10.0]))
    b = Ratio(np.array([2.0, 2.0, 2.0]), np.array([10.0, 10.0, 10.0]))
    est, var = log_ratio_clustered(a, b)  # type: ignore[misc]
    assert est == pytest.approx(math.log((6 / 30) / (2 / 30)))
    # no ids: the arms are six distinct users; b's terms are all 0. Delta method: 6/5 x the
    # sum of a's terms / R_a squared = 0.2. Jackknife: dropping one of a's users moves R_a by
    # (-1/60, -1/60, 1/30), log R_a by x 15: (0.25, 0.25, -0.5) with the sign flipped; 5/6 x
    # 0.375 = 0.3125, the larger
    za = (a.num - a.value * a.den) / 30 / a.value
    assert 6 / 5 * float(np.sum(za**2)) == pytest.approx(0.2)
    assert var == pytest.approx(5 / 6 * 0.375)
    assert log_ratio_clustered(Ratio(np.zeros(2), np.ones(2)), b) is None
    assert kish(np.array([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)
    assert kish(np.zeros(3)) is None


# ----------------------------------------------------------------------------------- ipw


def test_arm_estimates_by_hand() -> None:
    out = ipw.arm_estimates(rows())
    assert out["recall"]["value"] == pytest.approx(4 / 7)
    assert out["precision"]["value"] == pytest.approx(4 / 8)
    assert out["legit_decline_rate"]["value"] == pytest.approx(4 / 29)
    # recall's terms (c - R f) / F: u1 (2 - 12/7)/7 = 2/49, u3 -2/49, u2 contributes nothing
    assert out["recall"]["std_error"] == pytest.approx(math.sqrt(2 * 2 * (2 / 49) ** 2))
    # approved frauds weigh 1 (3 of them), explored ones 1/p = 2 (2): (3 + 4)^2 / (3 + 2 * 4)
    assert out["recall"]["ess"] == pytest.approx(49 / 11)
    assert out["recall"]["ess_users"] == pytest.approx(49 / 25)  # F per user (3, 0, 4)
    assert (out["total_fraud_w"], out["caught_w"], out["explored"]) == (7.0, 4.0, 3)
    assert out["coverage"] == pytest.approx(6 / 8)  # sum 1/p over explored / flagged
    assert ipw.mean_propensity(rows()) == pytest.approx(0.5)


def test_shadow_ratios_and_the_paired_difference_by_hand() -> None:
    u = rows()
    assert ipw.ratio(u, "recall", other=True).value == pytest.approx(4 / 7)
    assert ipw.ratio(u, "precision", other=True).value == pytest.approx(4 / 6)
    est, var, k = ipw.paired_difference(shadow(), "recall")  # type: ignore[misc]
    assert est == pytest.approx(0.0) and k == 2
    # per user (C_O - C) / F: (-1/7, 0, 1/7): 2 * 2/49 = 0.0816; the pseudo-event floor
    # (one D-only explored fraud, p 0.5): (1 + 1) / (0.5 * 7)^2 = 0.163 binds
    assert var == pytest.approx(2 / 3.5**2)
    assert ipw.paired_floor(shadow(), "recall") == pytest.approx(2 / 3.5**2)


def test_split_difference_clusters_a_user_in_both_arms() -> None:
    a, b = rows(), rows()
    same = ipw.split_difference(a, b, "recall")
    assert same is not None and same[0] == pytest.approx(0.0) and same[2] == 2
    # identical rows under the same ids cancel per user: only the floors remain
    assert same[1] == pytest.approx(2 * ipw.split_floor(a, "recall"))
    apart = ipw.split_difference(a, type(b)(**{**b.__dict__, "ids": None}), "recall")
    assert apart is not None and apart[2] == 4


def test_no_exploration_means_no_ipw_recall_and_no_amount_metrics() -> None:
    u = make(n=[10.0, 10.0], flagged=[2.0, 3.0], fraud_approved=[1.0, 1.0])
    assert ipw.ratio(u, "recall").value == 0.0  # nothing explored: no caught fraud seen
    assert ipw.mean_propensity(u) is None and ipw.split_floor(u, "recall") == 0.0
    assert ipw.fraud_ess(make(n=[1.0])) is None
    with pytest.raises(ValueError, match="amount_recall"):
        ipw.ratio(u, "amount_recall")
    assert ipw.paired_difference(ArmLabels(), "recall") is None


def test_the_floor_stops_a_verdict_on_no_explored_fraud() -> None:
    """Without an explored fraud the delta method sees only the approved stratum (B-only
    catches, all positive): a tiny variance. One pseudo-event keeps the interval honest."""
    users = 200
    u = make(n=[50.0] * users, flagged=[1.0] * users, explored=[0.01] * users,
             explored_w=[1.0] * users, fraud_approved=[3.0] * users,
             other_fraud_approved=[0.1] * users, other_flagged=[1.0] * users)
    est, var, _ = ipw.paired_difference(ArmLabels(u, exploring=True), "recall")  # type: ignore
    assert est == pytest.approx(0.1 / 3)
    f = 3.0 * users
    assert var == pytest.approx(1.0 / (0.01 * f) ** 2)  # the floor: (0 + 1) / (p F)^2
    assert est / math.sqrt(var) < 1  # no longer "significant"

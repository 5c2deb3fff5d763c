"""fraud.stats.periods: a user in two periods is one cluster; alpha is spent across periods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fraud.config import StatsSettings
from fraud.stats.periods import UserPeriods, fraud_users, period_rank, spent, stratified
from fraud.stats.users import primary_look, stratified_difference


def _two_periods(seed: int = 4, users: int = 60) -> UserPeriods:
    """Every user active in both periods; a share increase moves the upper half of A to B.
    Each user's catch probability is their own (Beta), so a user's periods are correlated."""
    rng = np.random.default_rng(seed)
    catch = rng.beta(1.4, 0.6, users)
    rows = []
    for period, cut in ((1, users // 4), (2, users // 2)):
        for u in range(users):
            frauds = int(rng.integers(1, 8))
            tp = int(rng.binomial(frauds, catch[u]))
            arm = "model_b" if u < cut else "model_a"
            rows.append((period, arm, f"u{u}", 20, tp + 1, 0, frauds, tp, 1, frauds - tp,
                         19 - frauds))
    return UserPeriods.from_rows(rows)


def _by_hand(up: UserPeriods) -> tuple[float, float]:
    """theta = sum_p w_p (R_b,p - R_a,p); z_u summed over the user's periods and arms."""
    x, y = up.tp + up.fn, up.tp
    strata = []
    for p in (1, 2):
        ma, mb = (up.period == p) & (up.arm == "model_a"), (up.period == p) & (up.arm ==
                                                                                "model_b")
        na, nb = x[ma].sum(), x[mb].sum()
        strata.append((p, ma, mb, na * nb / (na + nb)))  # Cochran-Mantel-Haenszel
    total = sum(s[3] for s in strata)
    z: dict[str, float] = {}
    est = 0.0
    for _, ma, mb, w in strata:
        w = w / total
        for m, sign in ((mb, 1.0), (ma, -1.0)):
            r = y[m].sum() / x[m].sum()
            est += sign * w * r
            for user, xi, yi in zip(up.user[m], x[m], y[m], strict=True):
                z[user] = z.get(user, 0.0) + sign * w * (yi - r * xi) / x[m].sum()
    k = len(z)
    delta = k / (k - 1) * sum(v * v for v in z.values())
    # the delete-one-user jackknife: each user's rows leave every stratum at once
    d: dict[str, float] = {}
    for _, ma, mb, w in strata:
        w = w / total
        for m, sign in ((mb, 1.0), (ma, -1.0)):
            big_x, big_y = x[m].sum(), y[m].sum()
            for user, xi, yi in zip(up.user[m], x[m], y[m], strict=True):
                change = (big_y - yi) / (big_x - xi) - big_y / big_x
                d[user] = d.get(user, 0.0) + sign * w * change
    mean = sum(d.values()) / k
    jackknife = (k - 1) / k * sum((v - mean) ** 2 for v in d.values())
    return est, max(delta, jackknife)


def test_a_user_in_two_periods_is_one_cluster() -> None:
    up = _two_periods()
    got = stratified(up, "recall")
    est, var = _by_hand(up)
    assert got is not None
    assert got["estimate"] == pytest.approx(est)
    assert got["variance"] == pytest.approx(var)
    assert got["clusters"] == 60 and got["users"] == (45, 30)  # distinct users per arm
    old = stratified_difference(up.arm_periods(), "recall")
    assert old is not None
    # the old variance treats the periods as independent samples: it is not the same
    assert abs(old["variance"] - var) / var > 0.05
    assert old["users"] == (75, 45)  # ... and counts a user once per period


def test_primary_look_uses_the_user_rows_when_given() -> None:
    up = _two_periods()
    s = StatsSettings(min_fraud_users_per_arm=2)
    look = primary_look(up.arm_periods(), s, user_periods=up)
    assert look["std_error"] == pytest.approx(math.sqrt(_by_hand(up)[1]))
    assert look["clustered"] == "user, across periods"
    assert (look["fraud_users_a"], look["fraud_users_b"]) == (45, 30)
    assert fraud_users(up, "model_a") == 45


def test_from_rows_and_arm_periods() -> None:
    up = UserPeriods.from_rows([(1, "model_a", "x", 3, 1, 0, 1, 1, 0, 0, 2),
                                (2, "model_b", "x", 2, None, 1, 0, 0, 0, 0, 2)])
    assert up.arm.tolist() == ["model_a", "model_b"] and up.flagged.tolist() == [1.0, 0.0]
    periods = up.arm_periods()
    assert sorted(periods) == [1, 2] and periods[2]["model_b"].errors == 1
    assert stratified(up, "recall") is None  # no period has both arms


def test_alpha_spending_sums_to_alpha() -> None:
    assert spent(0.003, 1) == pytest.approx(0.003 * 6 / math.pi**2)
    assert spent(0.003, 2) == pytest.approx(spent(0.003, 1) / 4)
    assert sum(spent(0.01, k) for k in range(1, 10_000)) < 0.01
    assert sum(spent(0.01, k) for k in range(1, 10_000)) == pytest.approx(0.01, rel=1e-3)
    assert spent(0.01, 0) == spent(0.01, 1)


def test_period_rank_counts_periods_with_data() -> None:
    assert period_rank({}, 5) == 1
    assert period_rank({1: {}, 3: {}}, 3) == 2
    assert period_rank({1: {}, 3: {}}, 4) == 3  # a new period not yet recorded

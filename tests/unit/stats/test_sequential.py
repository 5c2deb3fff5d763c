"""fraud.stats.sequential: the normal-mixture mSPRT, the Beta-binomial SRM Bayes factor, Memory."""

from __future__ import annotations

import itertools
import json
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from fraud.stats.sequential import Memory, msprt, srm_log_bayes_factor, srm_p_value

# ------------------------------------------------------------------------------------ mSPRT



def _rule(verdict: str):
    """A decision rule that gives `verdict` whatever the interval."""
    return lambda low, high: verdict

def _mixture_lr(est: float, v: float, tau: float, theta0: float) -> float:
    """Lambda(theta0) = int N(est; theta, v) / N(est; theta0, v) dN(theta; theta0, tau^2)."""

    def integrand(theta: float) -> float:
        log_ratio = ((est - theta0) ** 2 - (est - theta) ** 2) / (2.0 * v)
        return math.exp(log_ratio) * sps.norm.pdf(theta, theta0, tau)

    lo, hi = theta0 - 12 * tau, theta0 + 12 * tau
    value, _ = integrate.quad(integrand, lo, hi, points=[est, theta0], limit=400,
                              epsabs=0.0, epsrel=1e-11)
    return value


MSPRT_CASES = [  # (estimate, variance, tau, theta0)
    (0.03, 4e-4, 0.1, 0.0),
    (-0.05, 1e-3, 0.1, 0.0),
    (0.2, 0.01, 0.5, 0.1),
    (0.08, 2e-4, 0.05, 0.0),
    (0.0, 1e-3, 0.1, 0.0),  # Lambda < 1: p = 1
    (0.12, 5e-4, 0.1, 0.02),
]


@pytest.mark.parametrize(("est", "v", "tau", "theta0"), MSPRT_CASES)
def test_msprt_closed_form_matches_numerical_mixture(est: float, v: float, tau: float,
                                                     theta0: float) -> None:
    lam = _mixture_lr(est, v, tau, theta0)
    p, _, _ = msprt(est, v, tau, 0.05, theta0)
    assert p == pytest.approx(min(1.0, 1.0 / lam), rel=1e-8)


@pytest.mark.parametrize(("est", "v", "tau", "theta0"), MSPRT_CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.003])
def test_cs_endpoints_are_where_the_mixture_reaches_one_over_alpha(
        est: float, v: float, tau: float, theta0: float, alpha: float) -> None:
    _, low, high = msprt(est, v, tau, alpha, theta0)
    assert low < est < high
    assert high - est == pytest.approx(est - low, rel=1e-12)
    for end in (low, high):
        assert _mixture_lr(est, v, tau, end) == pytest.approx(1.0 / alpha, rel=1e-7)


def test_msprt_by_hand() -> None:
    est, v, t2, alpha = 0.04, 1e-4, 0.01, 0.05
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * est**2 / (2 * v * (v + t2))
    half = math.sqrt(v * (v + t2) / t2 * (math.log((v + t2) / v) + 2 * math.log(1 / alpha)))
    p, low, high = msprt(est, v, 0.1, alpha)
    assert p == pytest.approx(math.exp(-log_lambda), rel=1e-12)
    assert (low, high) == pytest.approx((est - half, est + half), rel=1e-12)
    # log Lambda = 0.5 log(1/101) + 1.6e-5 / 2.02e-6 = -2.30756 + 7.92079
    assert p == pytest.approx(math.exp(-(7.920792 - 2.307560)), rel=1e-6)
    assert p == pytest.approx(0.0036493, rel=1e-4)
    # half = sqrt(1.01e-4 * (log 101 + 2 log 20)) = sqrt(1.01e-4 * 10.60658) = 0.0327302
    assert high - est == pytest.approx(0.0327302, rel=1e-5)


def test_p_below_alpha_iff_cs_excludes_theta0() -> None:
    checked = excluded = 0
    for alpha in (0.05, 0.01, 0.003):
        for v in (1e-5, 1e-4, 1e-3, 1e-2):
            for tau in (0.02, 0.1, 0.5):
                for est in np.linspace(-0.3, 0.3, 61):
                    for theta0 in (-0.1, 0.0, 0.05):
                        p, low, high = msprt(float(est), v, tau, alpha, theta0)
                        if abs(p - alpha) < 1e-9:
                            continue
                        outside = not low <= theta0 <= high
                        assert (p <= alpha) == outside, (est, v, tau, alpha, theta0, p)
                        checked += 1
                        excluded += outside
    assert checked > 6000 and 0 < excluded < checked


@pytest.mark.parametrize("alpha", [0.2, 0.05, 0.003, 1e-6])
def test_cs_is_wider_than_fixed_horizon_interval(alpha: float) -> None:
    z = NormalDist().inv_cdf(1 - alpha / 2)
    for v in np.logspace(-8, 0, 33):
        for tau in (0.01, 0.1, 1.0):
            _, low, high = msprt(0.0, float(v), tau, alpha)
            assert high > z * math.sqrt(v)
            assert low < -z * math.sqrt(v)


def test_msprt_p_is_one_at_the_null_and_monotone_in_distance() -> None:
    assert msprt(0.0, 1e-3, 0.1, 0.05)[0] == 1.0
    ps = [msprt(d, 1e-3, 0.1, 0.05)[0] for d in np.linspace(0.0, 0.3, 31)]
    assert all(b <= a for a, b in itertools.pairwise(ps))
    assert ps[-1] < 1e-10


@pytest.mark.parametrize(("v", "tau", "alpha"), [
    (0.0, 0.1, 0.05), (-1.0, 0.1, 0.05), (1e-3, 0.0, 0.05), (1e-3, 0.1, 0.0),
    (1e-3, 0.1, 1.0),
])
def test_msprt_rejects_bad_arguments(v: float, tau: float, alpha: float) -> None:
    with pytest.raises(ValueError):
        msprt(0.1, v, tau, alpha)


# ------------------------------------------------------------------------- SRM Bayes factor


def _srm_bf_numerical(n_a: int, n_b: int, share_b: float, k: float) -> float:
    """int theta^n_a (1-theta)^n_b Beta(theta; k(1-s), ks) / ((1-s)^n_a s^n_b), theta = P(A)."""
    a0, b0 = k * (1 - share_b), k * share_b

    def integrand(theta: float) -> float:
        if theta <= 0.0 or theta >= 1.0:
            return 0.0
        log = (n_a * math.log(theta / (1 - share_b)) + n_b * math.log((1 - theta) / share_b)
               + sps.beta.logpdf(theta, a0, b0))
        return math.exp(log)

    peak = (n_a + a0) / (n_a + n_b + a0 + b0)
    value, _ = integrate.quad(integrand, 0.0, 1.0, points=[peak, 1 - share_b], limit=400,
                              epsabs=0.0, epsrel=1e-11)
    return value


@pytest.mark.parametrize(("n_a", "n_b", "share_b", "k"), [
    (0, 0, 0.5, 100.0), (10, 5, 0.5, 100.0), (45, 55, 0.5, 100.0), (300, 260, 0.5, 100.0),
    (80, 20, 0.3, 10.0), (500, 430, 0.5, 100.0), (12, 40, 0.8, 2.0),
])
def test_srm_bayes_factor_matches_numerical_marginal(n_a: int, n_b: int, share_b: float,
                                                     k: float) -> None:
    log_bf = srm_log_bayes_factor(n_a, n_b, share_b, k)
    assert math.exp(log_bf) == pytest.approx(_srm_bf_numerical(n_a, n_b, share_b, k),
                                             rel=1e-7)
    assert srm_p_value(n_a, n_b, share_b, k) == pytest.approx(min(1.0, math.exp(-log_bf)))


@pytest.mark.parametrize(("n_a", "n_b"), [(0, 0), (3, 9), (120, 80), (1000, 1100)])
@pytest.mark.parametrize("share_b", [0.5, 0.2])
def test_srm_bayes_factor_is_a_martingale_under_the_share(n_a: int, n_b: int,
                                                          share_b: float) -> None:
    """E[BF after one more user | now] = BF now when each user is Bernoulli(share_b)."""
    now = math.exp(srm_log_bayes_factor(n_a, n_b, share_b, 100.0))
    nxt = ((1 - share_b) * math.exp(srm_log_bayes_factor(n_a + 1, n_b, share_b, 100.0))
           + share_b * math.exp(srm_log_bayes_factor(n_a, n_b + 1, share_b, 100.0)))
    assert nxt == pytest.approx(now, rel=1e-10)


def test_srm_edges() -> None:
    assert srm_log_bayes_factor(0, 0, 0.5, 100.0) == 0.0
    assert srm_p_value(0, 0, 0.5, 100.0) == 1.0
    assert srm_p_value(5000, 5000, 0.5, 100.0) == 1.0
    assert srm_p_value(5000, 4000, 0.5, 100.0) < 1e-15
    for share, k in ((0.0, 100.0), (1.0, 100.0), (-0.1, 100.0), (0.5, 0.0)):
        with pytest.raises(ValueError):
            srm_log_bayes_factor(10, 10, share, k)


def _ever_below(b: np.ndarray, share_b: float, every: int, alpha: float) -> np.ndarray:
    """For each sequence of B-indicators, whether the anytime p ever falls below alpha."""
    n_b = np.cumsum(b, axis=1)[:, every - 1::every]
    looks = np.arange(every, b.shape[1] + 1, every)
    hit = np.zeros(len(b), dtype=bool)
    for i in range(len(b)):
        for n, nb in zip(looks, n_b[i], strict=True):
            if srm_p_value(int(n - nb), int(nb), share_b, 100.0) < alpha:
                hit[i] = True
                break
    return hit


def test_srm_under_correct_assignment_obeys_ville_at_every_look() -> None:
    """2000 sequences of 3000 users (Bernoulli(0.5) each), a look every 10 users (300 looks):
    the share that ever reaches p < 0.01 is at most 0.01."""
    rng = np.random.default_rng(11)
    b = rng.random((2000, 3000)) < 0.5
    rate = _ever_below(b, 0.5, 10, 0.01).mean()
    assert rate <= 0.01, rate  # 0.0045 with this seed


def test_srm_detects_a_45_55_split() -> None:
    rng = np.random.default_rng(12)
    b = rng.random((500, 3000)) < 0.55
    assert _ever_below(b, 0.5, 10, 0.01).mean() >= 0.95
    assert _ever_below(b, 0.5, 10, 0.001).mean() >= 0.85


# ------------------------------------------------------------------------------------ Memory


def test_memory_starts_collecting() -> None:
    m = Memory()
    assert (m.p_min, m.ci_low, m.ci_high, m.verdict, m.verdict_look, m.looks) == (
        1.0, None, None, "collecting", None, 0)


def test_observe_running_min_and_intersection() -> None:
    m = Memory()
    m = m.observe(0.5, -0.1, 0.3, _rule("collecting"))
    assert (m.p_min, m.ci_low, m.ci_high, m.looks) == (0.5, -0.1, 0.3, 1)
    m = m.observe(0.2, -0.2, 0.2, _rule("collecting"))
    assert (m.p_min, m.ci_low, m.ci_high, m.looks) == (0.2, -0.1, 0.2, 2)
    m = m.observe(0.7, 0.0, 0.4, _rule("collecting"))
    assert (m.p_min, m.ci_low, m.ci_high, m.looks) == (0.2, 0.0, 0.2, 3)
    assert m.verdict == "collecting" and m.verdict_look is None


def test_first_verdict_is_latched() -> None:
    m = Memory().observe(0.3, -0.1, 0.2, _rule("collecting"))
    m = m.observe(0.01, 0.01, 0.15, _rule("challenger_better"))
    assert (m.verdict, m.verdict_look) == ("challenger_better", 2)
    m = m.observe(0.5, -0.05, 0.14, _rule("collecting"))
    m = m.observe(0.001, -0.3, -0.01, _rule("challenger_worse"))
    m = m.observe(0.2, -0.02, 0.02, _rule("no_difference"))
    assert (m.verdict, m.verdict_look, m.looks) == ("challenger_better", 2, 5)
    assert m.p_min == 0.001


def test_disjoint_cs_takes_the_hull() -> None:
    m = Memory().observe(0.4, 0.0, 0.1, _rule("collecting"))
    n = m.observe(0.3, 0.2, 0.3, _rule("collecting"))
    assert (n.ci_low, n.ci_high) == (0.0, 0.3)
    assert n.p_min == 0.3 and n.looks == 2


def _memories() -> list[Memory]:
    return [
        Memory(),
        Memory(0.4, -0.2, 0.3, "collecting", None, 4),
        Memory(0.02, -0.05, 0.25, "collecting", None, 7),
        Memory(0.01, 0.01, 0.2, "challenger_better", 6, 9),
        Memory(0.3, -0.04, 0.04, "no_difference", 3, 5),
        Memory(0.3, -0.04, 0.04, "challenger_better", 3, 5),
        Memory(0.001, -0.1, 0.05, "challenger_worse", 8, 12),
    ]


def test_merge_is_commutative_idempotent_and_associative() -> None:
    ms = _memories()
    for a in ms:
        assert a.merge(a) == a
        assert a.merge(Memory()) == a and Memory().merge(a) == a
        for b in ms:
            assert a.merge(b) == b.merge(a), (a, b)
            for c in ms:
                assert a.merge(b).merge(c) == a.merge(b.merge(c))


def test_merge_takes_the_earliest_verdict_and_combines() -> None:
    a = Memory(0.01, 0.01, 0.2, "challenger_better", 6, 9)
    b = Memory(0.3, -0.04, 0.04, "no_difference", 3, 5)
    c = Memory(0.4, -0.2, 0.3, "collecting", None, 11)
    assert a.merge(b) == Memory(0.01, 0.01, 0.04, "no_difference", 3, 9)
    assert a.merge(c) == Memory(0.01, 0.01, 0.2, "challenger_better", 6, 11)


def test_merge_of_disjoint_sequences_is_commutative() -> None:
    a = Memory(0.4, 0.0, 0.1, "collecting", None, 3)
    b = Memory(0.3, 0.2, 0.3, "collecting", None, 4)
    assert a.merge(b) == b.merge(a)


def test_json_round_trip() -> None:
    for m in _memories():
        text = json.dumps(m.to_json(), allow_nan=False)
        assert Memory.from_json(json.loads(text)) == m
    assert Memory.from_json(None) == Memory()
    assert Memory.from_json({}) == Memory()
    assert Memory.from_json({"p_min": 0.2, "unknown": 1}) == Memory(p_min=0.2)

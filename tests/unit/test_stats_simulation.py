"""Simulated experiments (no server): error rates of the sequential test, SRM and intervals.

Every test uses numpy's default_rng with a fixed seed, so the figures printed under
``pytest -s`` are the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import chi2, norm

from fraud.stats import f1_summary, sample_ratio_check, sequential_test, wilson_interval

N_EXPERIMENTS = 1000
HORIZON = 5000  # labelled fraud cases per experiment (both arms together)
STEP = 100  # someone refreshes /ab-stats after every 100 new labelled fraud cases
ALPHA = 0.05
MIN_TRIALS = 30


@dataclass
class Looks:
    """Cumulative (successes, trials) per arm at each look: arrays of shape (experiments, looks)."""

    xa: np.ndarray
    na: np.ndarray
    xb: np.ndarray
    nb: np.ndarray


def simulate_looks(seed: int, recall_a: float, recall_b: float, share_b: float = 0.5,
                   n_exp: int = N_EXPERIMENTS, horizon: int = HORIZON,
                   step: int = STEP) -> Looks:
    """Labelled fraud cases arrive one by one, go to arm b w.p. share_b, are caught w.p. recall."""
    rng = np.random.default_rng(seed)
    in_b = rng.random((n_exp, horizon)) < share_b
    caught = rng.random((n_exp, horizon)) < np.where(in_b, recall_b, recall_a)
    idx = np.arange(step, horizon + 1, step) - 1
    nb = np.cumsum(in_b, axis=1)[:, idx]
    xb = np.cumsum(caught & in_b, axis=1)[:, idx]
    xa = np.cumsum(caught & ~in_b, axis=1)[:, idx]
    return Looks(xa=xa, na=(idx + 1) - nb, xb=xb, nb=nb)


@dataclass
class SequentialOutcome:
    """For each experiment: the first look (1-based) at which each verdict appeared, 0 = never."""

    better: np.ndarray
    worse: np.ndarray
    no_difference: np.ndarray

    @property
    def any_difference(self) -> np.ndarray:
        return (self.better > 0) | (self.worse > 0)


def run_sequential(looks: Looks) -> SequentialOutcome:
    """Call the real sequential_test at every look of every experiment (no early stopping)."""
    n_exp, n_looks = looks.xa.shape
    first = {v: np.zeros(n_exp, dtype=int) for v in
             ("challenger_better", "challenger_worse", "no_difference")}
    for r in range(n_exp):
        for k in range(n_looks):
            verdict = sequential_test(int(looks.xa[r, k]), int(looks.na[r, k]),
                                      int(looks.xb[r, k]), int(looks.nb[r, k]),
                                      tau=0.1, alpha=ALPHA, min_trials=MIN_TRIALS,
                                      margin=0.05)["verdict"]
            if verdict in first and first[verdict][r] == 0:
                first[verdict][r] = k + 1
    return SequentialOutcome(first["challenger_better"], first["challenger_worse"],
                             first["no_difference"])


def naive_peeking(looks: Looks, alpha: float = ALPHA) -> np.ndarray:
    """Pooled two-proportion z-test (= Pearson chi-square, no Yates) at every look; any reject."""
    xa, na, xb, nb = (v.astype(float) for v in (looks.xa, looks.na, looks.xb, looks.nb))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (xa + xb) / (na + nb)
        se = np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
        z = (xb / nb - xa / na) / se
    crit = norm.ppf(1 - alpha / 2)
    ready = (looks.na >= MIN_TRIALS) & (looks.nb >= MIN_TRIALS) & (se > 0)
    return (ready & (np.abs(np.nan_to_num(z)) > crit)).any(axis=1)


# ------------------------------------------------------------------------------ A/A tests


def _aa(seed: int, recall: float, share_b: float) -> tuple[float, float, float]:
    looks = simulate_looks(seed, recall, recall, share_b)
    seq = run_sequential(looks)
    seq_rate = float(seq.any_difference.mean())
    naive_rate = float(naive_peeking(looks).mean())
    equiv_rate = float((seq.no_difference > 0).mean())
    print(f"\nA/A recall={recall} share_b={share_b}: {N_EXPERIMENTS} experiments, "
          f"{HORIZON // STEP} looks up to {HORIZON} labelled fraud: "
          f"false difference: sequential {seq_rate:.1%}, naive z-test peeking {naive_rate:.1%}; "
          f"no_difference reached {equiv_rate:.1%}")
    return seq_rate, naive_rate, equiv_rate


def test_aa_sequential_controls_false_positives_naive_does_not() -> None:
    seq_rate, naive_rate, _ = _aa(seed=20240601, recall=0.8, share_b=0.5)
    assert seq_rate <= ALPHA
    assert naive_rate > ALPHA
    assert naive_rate > seq_rate


def test_aa_unbalanced_split() -> None:
    seq_rate, naive_rate, _ = _aa(seed=20240602, recall=0.8, share_b=0.2)
    assert seq_rate <= ALPHA
    assert naive_rate > seq_rate


def test_aa_recall_near_one() -> None:
    seq_rate, naive_rate, _ = _aa(seed=20240603, recall=0.95, share_b=0.5)
    assert seq_rate <= ALPHA
    assert naive_rate > seq_rate


# ---------------------------------------------------------------------------- real gaps


def test_recall_gap_is_detected_as_challenger_worse() -> None:
    looks = simulate_looks(seed=20240604, recall_a=0.80, recall_b=0.65)
    seq = run_sequential(looks)
    detected = seq.worse > 0
    rate = float(detected.mean())
    median_labelled = float(np.median(seq.worse[detected])) * STEP
    print(f"\nrecall 0.80 vs 0.65: challenger_worse in {rate:.1%} of {N_EXPERIMENTS} "
          f"experiments within {HORIZON} labelled fraud; median at {median_labelled:.0f} "
          f"labelled; wrong 'better' {np.mean(seq.better > 0):.1%}, "
          f"'no_difference' {np.mean(seq.no_difference > 0):.1%}")
    assert rate >= 0.95
    assert not (seq.better > 0).any()
    assert not (seq.no_difference > 0).any()


def test_gap_outside_margin_is_rarely_called_no_difference() -> None:
    """True gap -0.051 lies just outside the +-0.05 margin, so 'no_difference' is an error."""
    looks = simulate_looks(seed=20240605, recall_a=0.80, recall_b=0.749)
    seq = run_sequential(looks)
    wrong = float((seq.no_difference > 0).mean())
    print(f"\nrecall 0.80 vs 0.749 (gap just outside margin): no_difference {wrong:.1%}, "
          f"challenger_worse {np.mean(seq.worse > 0):.1%}, "
          f"better {np.mean(seq.better > 0):.1%}")
    assert wrong <= ALPHA
    assert float((seq.better > 0).mean()) <= ALPHA


# --------------------------------------------------------------------------- sample ratio


def test_srm_flags_dropped_challenger_traffic() -> None:
    rng = np.random.default_rng(20240606)
    requests, share_b, drop = 20_000, 0.5, 0.10
    n_b_sent = rng.binomial(requests, share_b, size=N_EXPERIMENTS)
    n_a = requests - n_b_sent
    n_b_kept = rng.binomial(n_b_sent, 1 - drop)  # 10% of challenger traffic lost
    fault = np.mean([sample_ratio_check(int(a), int(b), share_b)["mismatch"]
                     for a, b in zip(n_a, n_b_kept, strict=True)])
    healthy = np.mean([sample_ratio_check(int(a), int(b), share_b)["mismatch"]
                       for a, b in zip(n_a, n_b_sent, strict=True)])
    print(f"\nSRM (alpha 0.001, {requests} requests): flagged {fault:.1%} with 10% of "
          f"challenger traffic dropped, {healthy:.1%} when healthy")
    assert fault >= 0.99
    assert healthy <= 0.005


def test_srm_under_peeking_reports_rate() -> None:
    """The SRM check is a fixed-sample test; peeking at it raises its false alarm rate."""
    rng = np.random.default_rng(20240607)
    per_look, n_looks = 1000, 20  # a look after every 1000 requests, up to 20 000
    nb = np.cumsum(rng.binomial(per_look, 0.5, size=(N_EXPERIMENTS, n_looks)), axis=1)
    na = per_look * np.arange(1, n_looks + 1) - nb
    # scipy.stats.chisquare costs ~0.3 ms a call, so compute the same statistic vectorised
    # and check it against the real function on a sample of looks.
    half = (na + nb) / 2
    stat = (na - half) ** 2 / half + (nb - half) ** 2 / half
    mismatch = chi2.sf(stat, df=1) < 0.001
    for i, r in enumerate(range(0, N_EXPERIMENTS, 20)):
        k = (7 * i) % n_looks
        res = sample_ratio_check(int(na[r, k]), int(nb[r, k]), 0.5)
        assert res["chi2"] == pytest.approx(stat[r, k])
        assert res["mismatch"] == mismatch[r, k]
    last = float(mismatch[:, -1].mean())
    peeked = float(mismatch.any(axis=1).mean())
    print(f"\nSRM A/A (alpha 0.001): false alarm {last:.1%} at one look, "
          f"{peeked:.1%} of experiments when checked at {n_looks} looks")
    assert peeked <= 0.02  # inflated from 0.1%, but still rare at alpha = 0.001


# ---------------------------------------------------------------------- interval coverage


def test_wilson_and_f1_interval_coverage() -> None:
    rng = np.random.default_rng(20240608)
    # (tp, fp, fn, tn) probabilities and the number of labelled decisions per arm
    cases = [((0.05, 0.01, 0.02, 0.92), 500), ((0.3, 0.2, 0.1, 0.4), 100),
             ((0.01, 0.002, 0.004, 0.984), 3000)]
    for probs, n in cases:
        tp, fp, fn, _ = probs
        truth = {"recall": tp / (tp + fn), "precision": tp / (tp + fp),
                 "f1": 2 * tp / (2 * tp + fp + fn)}
        hits = {k: [] for k in truth}
        for c in rng.multinomial(n, probs, size=2000):
            c_tp, c_fp, c_fn = int(c[0]), int(c[1]), int(c[2])
            for name, ci in (("recall", wilson_interval(c_tp, c_tp + c_fn)),
                             ("precision", wilson_interval(c_tp, c_tp + c_fp))):
                if ci is not None:
                    hits[name].append(ci[0] <= truth[name] <= ci[1])
            f1 = f1_summary(c_tp, c_fp, c_fn)
            if f1["value"] is not None:
                hits["f1"].append(f1["ci_low"] <= truth["f1"] <= f1["ci_high"])
        coverage = {k: float(np.mean(v)) for k, v in hits.items()}
        print(f"\n95% interval coverage, probs={probs}, n={n}: "
              + ", ".join(f"{k} {v:.1%}" for k, v in coverage.items()))
        for value in coverage.values():
            assert 0.93 <= value <= 0.975

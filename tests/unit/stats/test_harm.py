"""fraud.stats.harm: the legit-decline rates, their ratio test and where they come from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from label_rows import make, rows

from fraud.stats import harm
from fraud.stats.aggregates import FIELDS, ArmPeriod, PairedUsers
from fraud.stats.labels import ArmLabels
from fraud.stats.sequential import msprt


def test_label_rows_rate_by_hand() -> None:
    r = harm.label_rows_rate(rows())
    # legit declined: declined (2, 2, 1) - labelled frauds among them (1, 0, 0) = 4
    # legit: unexplored (8, 6, 19) - approved frauds (1, 0, 2) - labelled declined (1, 0, 0)
    assert r.num.tolist() == [1, 2, 1] and r.den.tolist() == [6, 6, 17]
    assert r.value == pytest.approx(4 / 29)


def test_the_ratio_test_by_hand() -> None:
    out = harm.test((math.log(2.0), 0.01), {"model_a": 0.01, "model_b": 0.02}, 1.5, 0.001,
                    0.5, "here")
    _, low, high = msprt(math.log(2.0), 0.01, 0.5, 0.001)
    assert out["ratio"] == pytest.approx(2.0)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((math.exp(low), math.exp(high)))
    assert out["inferior"] is (low > math.log(1.5)) and out["non_inferior"] is False
    equal = harm.test((0.0, 0.001), {}, 1.5, 0.05, 0.5, "here")
    assert equal["non_inferior"] is True and equal["inferior"] is False
    undefined = harm.test(None, {}, 1.5, 0.05, 0.5, "here")
    assert undefined["non_inferior"] is None and undefined["ratio"] is None


def test_from_counts_is_binomial_on_the_log_scale() -> None:
    a = ArmPeriod(fp=10, tn=990)
    b = ArmPeriod(fp=30, tn=970)
    (est, var), rates = harm.from_counts({1: {"model_a": a}, 2: {"model_a": a,
                                                                 "model_b": b}})
    ra, rb = 20.5 / 2001, 30.5 / 1001
    assert est == pytest.approx(math.log(rb / ra))
    assert var == pytest.approx((1 - ra) / (ra * 2000) + (1 - rb) / (rb * 1000))
    assert rates == {"model_a": 0.01, "model_b": 0.03}
    assert harm.from_counts({1: {"model_a": a}})[0] is None  # no challenger legit yet


def test_split_test_prefers_the_label_rows() -> None:
    flags = np.tile([0.0, 1.0, 2.0], 100)
    a = make(n=[100.0] * 300, flagged=flags.tolist())
    b = make(n=[100.0] * 300, flagged=(3 * flags).tolist())
    periods = {1: {"model_a": ArmPeriod(fp=1, tn=99), "model_b": ArmPeriod(fp=1, tn=99)}}
    out = harm.split_test(periods, 1.5, 0.01, 0.5, labels=ArmLabels(a, b))
    assert out["source"] == "label rows" and out["ratio"] == pytest.approx(3.0)
    assert out["inferior"] is True
    same = make(n=[100.0] * 30, flagged=[1.0] * 30)  # no user varies: no variance, no test
    assert harm.split_test(periods, 1.5, 0.01, 0.5, labels=ArmLabels(same, same))[
        "inferior"] is None
    counts = harm.split_test(periods, 1.5, 0.01, 0.5)
    assert counts["source"] == "per-period counts" and counts["clustered"] is False


def test_paired_test_on_the_same_mature_legit_transactions() -> None:
    rng = np.random.default_rng(2)
    n = rng.integers(5, 40, 500).astype(float)
    fp_a = rng.binomial(n.astype(int), 0.02).astype(float)
    cols = {f: np.zeros(500) for f in FIELDS}
    cols.update(n=n, mature=n, fp_a=fp_a, fp_b=3 * fp_a)
    out = harm.paired_test(PairedUsers(**cols), 1.25, 0.05, 0.2)
    assert out["ratio"] == pytest.approx(3.0) and out["inferior"] is True
    assert out["model_a"] == pytest.approx(fp_a.sum() / n.sum())

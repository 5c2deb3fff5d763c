"""Threshold rule and the evaluation report."""

import numpy as np
import pandas as pd

from training.evaluate import SLICES, choose_threshold, metrics, report


def test_threshold_maximises_f1_on_a_tiny_example():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    # At 0.8: tp=2 fp=0 fn=1 -> F1 0.8; at 0.35: tp=3 fp=1 -> F1 0.857 (the best).
    assert choose_threshold(y, p) == 0.35


def test_ties_take_the_higher_threshold():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.2, 0.95])
    assert choose_threshold(y, p) == 0.9


def test_metrics_exact():
    m = metrics(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.7, 0.1]), 0.5)
    assert m["num_samples"] == 4 and m["num_fraud"] == 2
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["roc_auc"] == 0.75
    assert metrics(np.array([0, 0]), np.array([0.1, 0.2]), 0.5)["roc_auc"] is None


def test_report_has_every_slice_with_sample_counts():
    frame = pd.DataFrame({"is_international": [1, 0, 1], "hour": [2, 12, 23],
                          "card_age_days": [5, 500, 40], "amount": [900, 20, 30],
                          "merchant_risk": [0.9, 0.1, 0.2]})
    r = report(frame, np.array([1, 0, 0]), np.array([0.9, 0.1, 0.6]), 0.5)
    assert set(r["slices"]) == set(SLICES)
    assert r["slices"]["international"]["num_samples"] == 2
    assert r["slices"]["night"]["num_samples"] == 1
    assert r["overall"]["num_samples"] == 3

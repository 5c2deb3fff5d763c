"""Evaluation: threshold choice and one JSON-ready report (overall + named slices)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

# Named slices a fraud team asks about; each is a boolean mask over a frame of features.
SLICES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "international": lambda df: df["is_international"] == 1,
    "domestic": lambda df: df["is_international"] == 0,
    "night": lambda df: df["hour"] < 6,
    "new_card": lambda df: df["card_age_days"] < 30,
    "large_amount": lambda df: df["amount"] >= 500,
    "high_risk_merchant": lambda df: df["merchant_risk"] >= 0.6,
}


def choose_threshold(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The rule: the score threshold that maximises F1 on the validation split.

    Ties go to the highest such threshold (fewer alerts for the same F1).
    """
    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    f1 = f1[:-1]  # the last point has no threshold
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best[-1]])


def metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """Threshold metrics plus ranking metrics (None where a class is absent)."""
    y_true = np.asarray(y_true).astype(int)
    pred = (np.asarray(proba) >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    return {
        "num_samples": len(y_true),
        "num_fraud": int(y_true.sum()),
        "flag_rate": float(pred.mean()) if len(pred) else None,
        "f1": float(f1_score(y_true, pred, zero_division=0)),
        "precision": float(precision_score(y_true, pred, zero_division=0)),
        "recall": float(recall_score(y_true, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, proba)) if both else None,
        "average_precision": float(average_precision_score(y_true, proba)) if both else None,
    }


def report(frame: pd.DataFrame, y_true: np.ndarray, proba: np.ndarray,
           threshold: float) -> dict[str, Any]:
    """One record: overall metrics and one entry per named slice, each with num_samples."""
    out: dict[str, Any] = {"threshold": threshold, "overall": metrics(y_true, proba, threshold),
                           "slices": {}}
    for name, select in SLICES.items():
        mask = select(frame).to_numpy()
        out["slices"][name] = metrics(y_true[mask], proba[mask], threshold)
    return out

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

from fraud.schema import FEATURES, FEATURES_BY_NAME

# Named slices a fraud team asks about, each with the feature it reads and a boolean mask over
# a frame of features; a slice whose feature configs/features.yaml lacks is left out.
SEED_SLICES: dict[str, tuple[str, Callable[[pd.DataFrame], pd.Series]]] = {
    "international": ("is_international", lambda df: df["is_international"] == 1),
    "domestic": ("is_international", lambda df: df["is_international"] == 0),
    "night": ("hour", lambda df: df["hour"] < 6),
    "new_card": ("card_age_days", lambda df: df["card_age_days"] < 30),
    "large_amount": ("amount", lambda df: df["amount"] >= 500),
    "high_risk_merchant": ("merchant_risk", lambda df: df["merchant_risk"] >= 0.6),
}
MAX_CATEGORY_SLICES = 12  # per category feature: one slice per value, up to this many


def _category_slice(name: str, code: int) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: df[name] == code


def active_slices() -> dict[str, Callable[[pd.DataFrame], pd.Series]]:
    """The seed's slices whose features exist, and one slice per value of each category."""
    out = {name: select for name, (feature, select) in SEED_SLICES.items()
           if feature in FEATURES_BY_NAME}
    for f in FEATURES:
        if f.categorical:
            for code in range(min(f.n_codes, MAX_CATEGORY_SLICES)):
                out[f"{f.name}={f.decode(code)}"] = _category_slice(f.name, code)
    return out


SLICES = active_slices()


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
    if not len(y_true):  # an empty slice (a category value absent from the split)
        return {"num_samples": 0, "num_fraud": 0, "flag_rate": None, "f1": None,
                "precision": None, "recall": None, "roc_auc": None, "average_precision": None}
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

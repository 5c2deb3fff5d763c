"""Training: fit champion and challenger, choose thresholds, evaluate on the test split."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraud.config import ModelSpec, ThresholdConfig
from fraud.schema import FEATURE_NAMES, LABEL
from training import thresholds
from training.data import Splits
from training.estimators import build_estimator
from training.evaluate import report

__all__ = ["TrainedModel", "build_estimator", "features", "fit_one"]


@dataclass
class TrainedModel:
    """A fitted estimator with its threshold, reports and timings."""

    role: str
    spec: ModelSpec
    estimator: Any
    threshold: float
    validation: dict[str, Any]
    test: dict[str, Any]
    fit_seconds: float
    feature_importances: dict[str, float] = field(default_factory=dict)
    # the rule, its settings, the chosen point and the validation curve (training/thresholds.py)
    threshold_rule: dict[str, Any] = field(default_factory=dict)


def features(frame: Any) -> np.ndarray:
    """The model input matrix in the one feature order."""
    return frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)


def fit_one(role: str, spec: ModelSpec, splits: Splits,
            threshold_cfg: ThresholdConfig | None = None) -> TrainedModel:
    """Fit on train, pick the threshold on validation by the configured rule (max_f1 unless
    told otherwise), report on validation and test."""
    threshold_cfg = threshold_cfg or ThresholdConfig()
    estimator = build_estimator(spec)
    started = time.perf_counter()
    estimator.fit(features(splits.train), splits.train[LABEL].to_numpy())
    fit_seconds = time.perf_counter() - started

    val_proba = estimator.predict_proba(features(splits.validation))[:, 1]
    y_val = splits.validation[LABEL].to_numpy()
    threshold, rule = thresholds.choose(threshold_cfg, splits.validation, y_val, val_proba)
    test_proba = estimator.predict_proba(features(splits.test))[:, 1]
    return TrainedModel(
        role=role,
        spec=spec,
        estimator=estimator,
        threshold=threshold,
        validation=report(splits.validation, y_val, val_proba, threshold),
        test=report(splits.test, splits.test[LABEL].to_numpy(), test_proba, threshold),
        fit_seconds=fit_seconds,
        feature_importances=_importances(estimator, splits),
        threshold_rule=rule,
    )


def _importances(estimator: Any, splits: Splits) -> dict[str, float]:
    """Impurity importances where the estimator has them, else permutation importances."""
    if hasattr(estimator, "feature_importances_"):
        values = estimator.feature_importances_
    else:
        from sklearn.inspection import permutation_importance

        sample = splits.validation.sample(n=min(5000, len(splits.validation)), random_state=0)
        result = permutation_importance(
            estimator, features(sample), sample[LABEL].to_numpy(),
            scoring="roc_auc", n_repeats=3, random_state=0,
        )
        values = result.importances_mean
    return {name: float(v) for name, v in zip(FEATURE_NAMES, values, strict=True)}

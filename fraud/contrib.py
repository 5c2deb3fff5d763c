"""Exact per-feature contributions from XGBoost and LightGBM themselves.

Both libraries compute path-dependent TreeSHAP over their own trees (XGBoost:
`predict(..., pred_contribs=True)`, LightGBM: `predict(..., pred_contrib=True)`), the same
method fraud/explain.py implements for scikit-learn's trees. Each returns one column per
feature plus the base value (the expected margin) last; they sum to the model's raw output
in log-odds, which a sigmoid turns into P(fraud). Neither library is imported unless the
estimator comes from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Contributions = Callable[[Sequence[float]], tuple[float, np.ndarray]]


def _library(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def contributions(est: Any) -> Contributions | None:
    """(base value, per-feature contributions in log-odds) of one row, for an XGBoost model
    or a LightGBM one (its Booster, or anything holding one as `booster` / `booster_`);
    None for any other estimator."""
    if _library(est) == "xgboost":
        import xgboost

        booster = est.get_booster() if hasattr(est, "get_booster") else est

        def xgb(x: Sequence[float]) -> tuple[float, np.ndarray]:
            row = xgboost.DMatrix(np.asarray([x], dtype=np.float64))
            out = np.asarray(booster.predict(row, pred_contribs=True), dtype=np.float64)[0]
            return float(out[-1]), out[:-1]

        return xgb
    booster = getattr(est, "booster_", None) or getattr(est, "booster", None) or est
    if _library(booster) == "lightgbm":

        def lgb(x: Sequence[float]) -> tuple[float, np.ndarray]:
            row = np.asarray([x], dtype=np.float64)
            out = np.asarray(booster.predict(row, pred_contrib=True), dtype=np.float64)[0]
            return float(out[-1]), out[:-1]

        return lgb
    return None

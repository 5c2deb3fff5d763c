"""The decision threshold from the validation split, by the configured rule, with its curve.

* max_f1: the threshold of highest F1 (training/evaluate.py's rule, unchanged).
* cost: the least expected cost under the shadow cost model: flagging a legit transaction
  costs decline_fixed + decline_share x amount, missing a fraud costs its amount, a caught
  fraud costs nothing.
* alert_budget: the lowest threshold that flags at most alerts_per_1000 per 1,000.

Ties go to the highest threshold (fewer alerts for the same value). The record it returns
(rule, settings, the chosen point and ~50 points of the validation curve) goes into the
model's metadata, the model card and the gate report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraud.config import ThresholdConfig
from fraud.schema import AMOUNT_FEATURE, FEATURES_BY_NAME
from training.evaluate import choose_threshold

CURVE_POINTS = 50


def _sweep(y: np.ndarray, proba: np.ndarray, cost_legit: np.ndarray | None,
           cost_fraud: np.ndarray | None) -> dict[str, np.ndarray]:
    """Counts and costs at every distinct score taken as the threshold (flag: p >= t)."""
    order = np.argsort(-proba, kind="stable")
    p = proba[order]
    last = np.r_[np.flatnonzero(p[1:] != p[:-1]), len(p) - 1]  # last row of each score
    tp = np.cumsum(y[order])[last]
    flagged = last + 1
    out = {"threshold": p[last], "tp": tp, "flagged": flagged}
    if cost_legit is not None and cost_fraud is not None:
        declined = np.cumsum(np.where(y[order] == 0, cost_legit[order], 0.0))[last]
        caught = np.cumsum(np.where(y[order] == 1, cost_fraud[order], 0.0))[last]
        out["cost"] = declined + cost_fraud[y == 1].sum() - caught
    return out


def _point(s: dict[str, np.ndarray], i: int, n: int, n_fraud: int) -> dict[str, float]:
    tp, flagged = float(s["tp"][i]), float(s["flagged"][i])
    precision = tp / flagged if flagged else 0.0
    recall = tp / n_fraud if n_fraud else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    point = {"threshold": float(s["threshold"][i]), "precision": precision, "recall": recall,
             "f1": f1, "alerts_per_1000": 1000 * flagged / n}
    if "cost" in s:
        point["cost_per_1000"] = float(1000 * s["cost"][i] / n)
    return point


def choose(cfg: ThresholdConfig, frame: pd.DataFrame, y: np.ndarray,
           proba: np.ndarray) -> tuple[float, dict[str, Any]]:
    """(threshold, record of the rule and its validation curve) on validation rows."""
    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=np.float64)
    amounts = _amounts(cfg, frame)
    legit_cost = None if amounts is None else cfg.decline_fixed + cfg.decline_share * amounts
    s = _sweep(y, proba, legit_cost, amounts)
    if cfg.rule == "cost":
        best = np.flatnonzero(s["cost"] == s["cost"].min())[0]  # highest threshold first
        threshold = float(s["threshold"][best])
        if s["cost"][best] > amounts[y == 1].sum():  # flagging nothing is cheaper still
            threshold = float(np.nextafter(s["threshold"][0], np.inf))
    elif cfg.rule == "alert_budget":
        within = np.flatnonzero(1000 * s["flagged"] / len(y) <= cfg.alerts_per_1000)
        # None within budget (one score shared by too many rows): flag only above the top.
        threshold = (float(s["threshold"][within[-1]]) if len(within)
                     else float(np.nextafter(s["threshold"][0], np.inf)))
    else:
        threshold = choose_threshold(y, proba)
    n_fraud = int(y.sum())
    picks = np.unique(np.linspace(0, len(s["threshold"]) - 1, CURVE_POINTS).round().astype(int))
    chosen = int(np.searchsorted(-s["threshold"], -threshold, side="right")) - 1
    record = {
        "rule": cfg.rule,
        "settings": _settings(cfg),
        "chosen": (_point(s, chosen, len(y), n_fraud) if chosen >= 0
                   else {"threshold": threshold, "alerts_per_1000": 0.0}),
        "curve": [_point(s, int(i), len(y), n_fraud) for i in picks],
    }
    return threshold, record


def _amounts(cfg: ThresholdConfig, frame: pd.DataFrame) -> np.ndarray | None:
    """Each row's amount, when the cost model can be computed (always, for rule: cost)."""
    name = _amount_feature(cfg)
    feature = FEATURES_BY_NAME.get(name or "")
    if feature is None or feature.kind not in ("number", "integer"):
        if cfg.rule == "cost":
            raise ValueError(f"threshold.rule: cost needs an amount: threshold.amount_feature "
                             f"{name!r} must be a number in configs/features.yaml (or set "
                             "amount_feature there)")
        return None
    return frame[name].to_numpy(dtype=np.float64)


def _amount_feature(cfg: ThresholdConfig) -> str | None:
    return cfg.amount_feature or AMOUNT_FEATURE


def check_rule(cfg: ThresholdConfig) -> None:
    """Raise ValueError before training when the rule cannot be applied to this schema."""
    _amounts(cfg, pd.DataFrame({_amount_feature(cfg) or "": []}))


def _settings(cfg: ThresholdConfig) -> dict[str, Any]:
    if cfg.rule == "cost":
        return {"decline_fixed": cfg.decline_fixed, "decline_share": cfg.decline_share,
                "amount_feature": _amount_feature(cfg)}
    if cfg.rule == "alert_budget":
        return {"alerts_per_1000": cfg.alerts_per_1000}
    return {}

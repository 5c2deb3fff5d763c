"""The router's rule: each row scored by its arm's model, and one model's failure kept to its rows.

Rows arrive as a matrix whose column 0 is the arm index (0 = model_a, 1 = model_b) and whose
other columns are the features. The router's adaptive batches mix rows of both arms from
several requests, so a challenger that raises must not fail the champion's rows beside it:
its rows get NaN, the API worker counts them as that arm's errors, and every other row keeps
its score.

`Router` is what the router process holds per arm (a scorer, an explainer, a drift window) and
does with it; service.py's ABRouter only loads the models and exposes its methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from fraud.config import ABConfig
from fraud.experiment.decisions import ArmModel
from fraud.schema import ARMS
from fraud.serving.explain_drift import (
    DriftGauges,
    drift_monitor,
    explainer,
    observe,
    publish_drift_every,
)
from fraud.serving.fastpredict import scorer

log = logging.getLogger("fraudserve.router")

Scorer = Callable[[np.ndarray], np.ndarray]


def score_by_arm(scorers: Sequence[Scorer], rows: np.ndarray) -> np.ndarray:
    """Fraud probability per row from its arm's scorer; NaN for the rows of a failing model
    (an exception, or a result that is not finite)."""
    out = np.empty(len(rows), dtype=np.float64)
    arms = rows[:, 0].astype(np.int64)
    for index, score in enumerate(scorers):
        mask = arms == index
        if not mask.any():
            continue
        try:
            out[mask] = score(rows[mask, 1:])
        except Exception:
            log.exception("%s failed to score %d rows", ARMS[index], int(mask.sum()))
            out[mask] = np.nan
    return out


def score_pair(scorers: Sequence[Scorer], rows: np.ndarray) -> np.ndarray:
    """Shadow mode: every row scored by both models. Column 0 is the row's arm model's score
    (NaN where it failed: the row fails), column 1 the other model's (NaN where it failed:
    only the shadow record is lost)."""
    both = np.empty((len(scorers), len(rows)), dtype=np.float64)
    for index, score in enumerate(scorers):
        try:
            both[index] = score(rows[:, 1:])
        except Exception:
            log.exception("%s failed to score %d rows", ARMS[index], len(rows))
            both[index] = np.nan
    both[~np.isfinite(both)] = np.nan
    arms = rows[:, 0].astype(np.int64)
    at = np.arange(len(rows))
    return np.column_stack([both[arms, at], both[1 - arms, at]])


def failed_rows(probabilities: np.ndarray) -> list[int]:
    """Indices of the rows whose score is missing (their model failed)."""
    decided = probabilities[:, 0] if probabilities.ndim == 2 else probabilities
    return [int(i) for i in np.flatnonzero(~np.isfinite(decided))]


class RouterGauges(DriftGauges, Protocol):
    def observe(self, rows: int) -> None:
        """One call's rows (the batch the router scored)."""


class Router:
    """The router's models per arm, in ARMS order: a scorer each, an explainer (None: not a
    tree ensemble) and a drift window (None: trained without a drift reference)."""

    def __init__(self, cfg: ABConfig, models: Mapping[str, ArmModel], estimators: Sequence[Any],
                 metrics: RouterGauges) -> None:
        self.cfg = cfg
        self.scorers = [scorer(e) for e in estimators]
        self.explainers = {arm: explainer(e, cfg.explain.reasons)
                           for arm, e in zip(ARMS, estimators, strict=True)}
        self.drift = {arm: drift_monitor(models[arm], cfg.drift.settings()) for arm in ARMS}
        self.metrics = metrics

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Per row its arm's score; in shadow mode also the other model's (two columns).
        Every scored row joins its arm's drift window (explanations do not come here)."""
        self.metrics.observe(len(rows))
        observe(self.drift, rows)
        if self.cfg.shadow.enabled:
            return score_pair(self.scorers, rows)
        return score_by_arm(self.scorers, rows)

    def publish_drift_every(self, sleep: Callable[[float], Any] = time.sleep) -> None:
        """Refresh the drift gauges every drift check interval, for ever (a thread's target)."""
        publish_drift_every(self.cfg.drift.check_interval_s, self.metrics, self.drift, sleep)

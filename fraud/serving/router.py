"""The router's rule: each row scored by its arm's model, and one model's failure kept to its rows.

Rows arrive as a matrix whose column 0 is the arm index (0 = model_a, 1 = model_b) and whose
other columns are the features. The router's adaptive batches mix rows of both arms from
several requests, so a challenger that raises must not fail the champion's rows beside it:
its rows get NaN, the API worker counts them as that arm's errors, and every other row keeps
its score.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from fraud.schema import ARMS

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

"""Feature drift of live traffic against the training reference: PSI and two-sample KS.

Training stores a small reference per feature in the model's metadata (`build_reference`),
so serving needs no training data:

* PSI bins: the training deciles as edges (deduplicated, and never the maximum, so every
  reference bin holds rows), bins (-inf, e1], (e1, e2], ..., (ek, inf), and the training
  share of each bin.
* A KS sketch: the training values at quantile levels i/200 (deduplicated), with the exact
  training CDF at each point and just below it. Between two adjacent points the training
  CDF rises by at most 1/200, so the KS statistic read at the points (both one-sided limits)
  is within 1/200 below the exact one; it is exact for features with at most 200 distinct
  values (hour, counts, flags).

A `DriftMonitor` keeps the last `window` live rows (a bounded deque) and compares them:
PSI = sum (q - p) ln(q / p) with live shares q smoothed by half a row per bin (an empty live
bin is a large but finite shift), and D = sup |F_train - F_live|. The verdict rule is in
`DriftSettings`; methods and measured rates: docs/explain-and-drift.md.

A category feature (configs/features.yaml) has no order, so it has no deciles and no KS: its
reference is the training share of each code (every listed value, and 'other' when allowed),
smoothed by half a row like the live shares so a value never seen in training is a large but
finite shift, and its PSI is over those codes (its KS is None).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from fraud.config.settings import PSI_BINS, DriftSettings
from fraud.schema import FEATURE_NAMES, FEATURES

REFERENCE_VERSION = 1
SKETCH_LEVELS = 200


def feature_reference(values: np.ndarray) -> dict[str, list[float]]:
    """The reference of one feature: PSI edges and shares, and the KS sketch (JSON-ready)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    deciles = np.quantile(x, np.arange(1, PSI_BINS) / PSI_BINS, method="inverted_cdf")
    edges = np.unique(deciles)
    edges = edges[edges < x[-1]]
    counts = np.diff(np.r_[0, np.searchsorted(x, edges, side="right"), n])
    points = np.unique(np.quantile(x, np.linspace(0, 1, SKETCH_LEVELS + 1),
                                   method="inverted_cdf"))
    return {
        "edges": edges.tolist(),
        "proportions": (counts / n).tolist(),
        "points": points.tolist(),
        "cdf_le": (np.searchsorted(x, points, side="right") / n).tolist(),
        "cdf_lt": (np.searchsorted(x, points, side="left") / n).tolist(),
    }


def category_reference(codes: np.ndarray, n_codes: int,
                       labels: list[str]) -> dict[str, Any]:
    """The reference of one category feature: each code's training share (smoothed)."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=n_codes)[:n_codes]
    return {"kind": "category", "labels": labels,
            "proportions": ((counts + 0.5) / (len(codes) + 0.5 * n_codes)).tolist()}


def build_reference(X: np.ndarray) -> dict[str, Any]:
    """The training reference of every feature of X (columns in FEATURE_NAMES order)."""
    X = np.asarray(X, dtype=np.float64)
    out: dict[str, Any] = {}
    for j, f in enumerate(FEATURES):
        if f.categorical:
            labels = [str(f.decode(c)) for c in range(f.n_codes)]
            out[f.name] = category_reference(X[:, j], f.n_codes, labels)
        else:
            out[f.name] = feature_reference(X[:, j])
    return {"version": REFERENCE_VERSION, "rows": int(X.shape[0]), "features": out}


def psi(ref: dict[str, Any], values: np.ndarray) -> float:
    """Population stability index of live `values` against one feature's reference."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    p = np.asarray(ref["proportions"])
    if ref.get("kind") == "category":
        codes = np.clip(x.astype(np.int64), 0, len(p) - 1)
        counts = np.bincount(codes, minlength=len(p))
    else:
        cut = np.searchsorted(x, ref["edges"], side="right")
        counts = np.diff(np.r_[0, cut, len(x)])
    q = (counts + 0.5) / (len(x) + 0.5 * len(p))
    return float(np.sum((q - p) * np.log(q / p)))


def ks(ref: dict[str, list[float]], values: np.ndarray) -> float:
    """Two-sample KS statistic of live `values` against one feature's sketch."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    points = np.asarray(ref["points"])
    le = np.searchsorted(x, points, side="right") / len(x)
    lt = np.searchsorted(x, points, side="left") / len(x)
    return float(max(np.abs(le - ref["cdf_le"]).max(), np.abs(lt - ref["cdf_lt"]).max()))


def psi_level(value: float, major: float = 0.25) -> str:
    """The usual reading of a PSI: below 0.1 stable, below `major` moderate, else major."""
    return "stable" if value < 0.1 else "moderate" if value < major else "major"


def compare(reference: dict[str, Any], X: np.ndarray, settings: DriftSettings) -> dict[str, Any]:
    """PSI, KS and verdicts of live rows X against a reference (JSON-ready, None = no verdict)."""
    if reference.get("version") != REFERENCE_VERSION:
        raise ValueError(f"drift reference version {reference.get('version')!r} is not "
                         f"{REFERENCE_VERSION}: retrain the model")
    n, m = int(X.shape[0]), int(reference["rows"])
    ready = n >= settings.min_rows
    critical = settings.ks_critical(n, m) if ready else None
    features: dict[str, Any] = {}
    for j, name in enumerate(FEATURE_NAMES):
        ref = reference["features"][name]
        if not ready:
            features[name] = {"psi": None, "psi_level": None, "psi_critical": None,
                              "ks": None, "drift": None}
            continue
        p = psi(ref, X[:, j])
        d = None if ref.get("kind") == "category" else ks(ref, X[:, j])
        p_crit = settings.psi_critical(n, m, len(ref["proportions"]))
        features[name] = {"psi": p, "psi_level": psi_level(p, settings.psi_threshold),
                          "psi_critical": p_crit, "ks": d,
                          "drift": bool(p >= settings.psi_threshold or p > p_crit
                                        or (d is not None and d > critical))}
    return {"rows": n, "ready": ready, "ks_critical": critical,
            "drift": any(f["drift"] for f in features.values()) if ready else None,
            "features": features}


class DriftMonitor:
    """The last `settings.window` live rows of one model, compared on demand."""

    def __init__(self, reference: dict[str, Any], settings: DriftSettings | None = None) -> None:
        self.reference = reference
        self.settings = settings or DriftSettings()
        self._rows: deque[np.ndarray] = deque(maxlen=self.settings.window)
        self._lock = threading.Lock()

    def observe(self, X: np.ndarray) -> None:
        """Add scored rows (n, features) in FEATURE_NAMES order; the oldest fall out."""
        with self._lock:
            self._rows.extend(np.asarray(X, dtype=np.float64).reshape(-1, len(FEATURE_NAMES)))

    def __len__(self) -> int:
        return len(self._rows)

    def report(self) -> dict[str, Any]:
        """`compare` on the current window, with the settings it was judged by."""
        with self._lock:
            rows = list(self._rows)
        X = np.array(rows).reshape(-1, len(FEATURE_NAMES))
        out = compare(self.reference, X, self.settings)
        out.update(window=self.settings.window, min_rows=self.settings.min_rows,
                   psi_threshold=self.settings.psi_threshold, alpha=self.settings.alpha)
        return out

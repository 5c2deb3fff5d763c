"""Exact per-feature contributions of one transaction's score: path-dependent TreeSHAP.

Method (Lundberg, Erion & Lee 2018, "Consistent individualized feature attribution for tree
ensembles", Algorithm 1's conditional expectation): the value of a coalition S of features is
the tree's expected output when the features in S are fixed to the row's values and the
others follow the training data, as the tree itself recorded it (each split sends the
unknown rows left and right in proportion to the training rows it saw: the node *cover*).
The Shapley values of that game are the contributions; they sum exactly to the model's
output minus the base value (the cover-weighted mean output).

Why path-dependent rather than interventional: it needs no background data set at serve
time (the trees carry their own cover), it costs one pass over the leaves instead of one per
background row, and it is exact, not a sample estimate.

How, over flat arrays instead of a recursion: every leaf is a box (low < x <= high per
feature) with a cover ratio R_j per feature (the product of child/parent cover over the
path's splits on j). With A_j = 1 when the row is inside the box along j, a leaf adds
value * prod_{j in S} A_j * prod_{j not in S} R_j to v(S), a product game whose Shapley value
for feature j is value * (A_j - R_j) * integral_0^1 prod_{i != j} (R_i + (A_i - R_i) t) dt
(the Shapley weights are Beta integrals). The integrand is a polynomial of degree M-1, so
ceil(M/2) Gauss-Legendre nodes integrate it exactly. Features not on a leaf's path have
A = R = 1 and get nothing from it, as the Shapley null-player axiom says they must.

Scales: the random forest's output is the mean of its trees' leaf probabilities, so
contributions are in probability and sum to P(fraud). HistGradientBoosting's output is a sum
of trees in log-odds passed through a sigmoid: contributions are exact in log-odds (they sum
to the decision function), and the probability is reported beside them, not split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from scipy.special import expit

from fraud.contrib import contributions
from fraud.schema import FEATURE_NAMES, FEATURES, FEATURES_BY_NAME, Feature

Scale = Literal["probability", "log_odds"]


class ExplainUnsupported(TypeError):
    """The estimator is not a tree ensemble this module can explain exactly."""


@dataclass(frozen=True)
class LeafTable:
    """Every leaf of an ensemble, feature-major: its box, cover ratios and output."""

    value: np.ndarray  # (L,) leaf output; the model output is offset + the reached leaves' sum
    low: np.ndarray  # (M, L) the row is inside the box along j when low < x_j <= high
    high: np.ndarray  # (M, L)
    cover: np.ndarray  # (M, L) product of child/parent cover over the path's splits on j
    offset: float  # boosting's baseline (log-odds); 0 for the forest
    scale: Scale
    float32_inputs: bool  # scikit-learn's forests compare float32(x) with the thresholds
    # The integrand's factor R + (A - R) t at the quadrature nodes, for A = 0 and A = 1:
    # (M, nodes, L), precomputed because a row only chooses between them.
    outside_factor: np.ndarray
    inside_factor: np.ndarray

    @cached_property
    def base_value(self) -> float:
        """The cover-weighted mean output: every feature unknown."""
        return self.offset + float(self.value @ np.prod(self.cover, axis=0))


def _tree_leaves(feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                 right: np.ndarray, count: np.ndarray, is_leaf: np.ndarray,
                 n_features: int) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Leaf ids of one tree with their boxes and cover ratios (a depth-first walk)."""
    leaves: list[int] = []
    lows, highs, covers = [], [], []
    stack = [(0, np.full(n_features, -np.inf), np.full(n_features, np.inf),
              np.ones(n_features))]
    while stack:
        node, low, high, cover = stack.pop()
        if is_leaf[node]:
            leaves.append(node)
            lows.append(low), highs.append(high), covers.append(cover)
            continue
        j, t = int(feature[node]), float(threshold[node])
        for child, go_left in ((int(left[node]), True), (int(right[node]), False)):
            lo, hi, cv = low.copy(), high.copy(), cover.copy()
            if go_left:
                hi[j] = min(hi[j], t)
            else:
                lo[j] = max(lo[j], t)
            cv[j] *= float(count[child]) / float(count[node])
            stack.append((child, lo, hi, cv))
    return leaves, np.array(lows), np.array(highs), np.array(covers)


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss((len(FEATURE_NAMES) + 1) // 2)
_T, _W = (_NODES + 1) / 2, _WEIGHTS / 2  # Gauss-Legendre on [0, 1]


def _table(trees: list[dict[str, np.ndarray]], weight: float, offset: float, scale: Scale,
           float32_inputs: bool) -> LeafTable:
    parts: list[tuple[np.ndarray, ...]] = []
    for t in trees:
        ids, low, high, cover = _tree_leaves(t["feature"], t["threshold"], t["left"],
                                             t["right"], t["count"], t["is_leaf"],
                                             len(FEATURE_NAMES))
        parts.append((t["value"][ids] * weight, low, high, cover))
    value, low, high, cover = (np.concatenate(p) for p in zip(*parts, strict=True))
    low, high, cover = low.T.copy(), high.T.copy(), cover.T.copy()
    if not (cover > 0).all():
        raise ExplainUnsupported("a node without training rows has no cover")
    t = _T[None, :, None]
    return LeafTable(value, low, high, cover, offset, scale, float32_inputs,
                     outside_factor=cover[:, None, :] * (1 - t),
                     inside_factor=cover[:, None, :] + (1 - cover[:, None, :]) * t)


def leaf_table(est: Any) -> LeafTable:
    """The leaf table of a fitted binary RandomForestClassifier or HistGradientBoostingClassifier.

    Cover is the count of training rows through each node (the forest's bootstrap rows
    counted once, before class weights), so the base value is the mean score over training
    rows, not over class-reweighted ones.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    if isinstance(est, RandomForestClassifier) and est.n_outputs_ == 1 and len(est.classes_) == 2:
        trees = []
        for tree in (e.tree_ for e in est.estimators_):
            counts = tree.value[:, 0, :]
            trees.append({"feature": tree.feature, "threshold": tree.threshold,
                          "left": tree.children_left, "right": tree.children_right,
                          "count": tree.n_node_samples, "is_leaf": tree.children_left == -1,
                          "value": counts[:, 1] / counts.sum(axis=1)})
        return _table(trees, 1.0 / len(trees), 0.0, "probability", True)
    if (isinstance(est, HistGradientBoostingClassifier) and len(est.classes_) == 2
            and getattr(est, "_preprocessor", None) is None):
        trees = []
        for (predictor,) in est._predictors:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ExplainUnsupported("categorical splits are not supported")
            trees.append({"feature": nodes["feature_idx"], "threshold": nodes["num_threshold"],
                          "left": nodes["left"], "right": nodes["right"],
                          "count": nodes["count"], "is_leaf": nodes["is_leaf"].astype(bool),
                          "value": nodes["value"]})
        baseline = float(np.asarray(est._baseline_prediction).ravel()[0])
        return _table(trees, 1.0, baseline, "log_odds", False)
    raise ExplainUnsupported(f"cannot explain {type(est).__name__} exactly")


def shapley(table: LeafTable, x: Sequence[float]) -> tuple[float, np.ndarray]:
    """(base value, per-feature contributions in FEATURE_NAMES order) for one row."""
    row = np.asarray(x, dtype=np.float64)
    if table.float32_inputs:
        row = row.astype(np.float32).astype(np.float64)
    inside = (row[:, None] > table.low) & (row[:, None] <= table.high)  # (M, L)
    f = np.where(inside[:, None, :], table.inside_factor, table.outside_factor)
    # prod_{i != j} f_i = prod_i f_i / f_j: every factor is > 0 (cover > 0, 0 < t < 1).
    weighted = _W[:, None] * np.prod(f, axis=0)  # (nodes, L)
    integral = (weighted[None, :, :] / f).sum(axis=1)  # (M, L)
    phi = (np.where(inside, 1.0, 0.0) - table.cover) * integral @ table.value
    return table.base_value, phi


def _phrase(feature: Feature) -> Callable[[float], str] | None:
    """How a reason reads for `feature`, from its `reason` in configs/features.yaml: one text
    per value, or a text with {value} (numbers as %g, categories by name)."""
    reason = feature.reason
    if reason is None:
        return None

    def said(code: float) -> str:
        value = feature.decode(code)
        shown = _shown(value)
        if isinstance(reason, Mapping):
            text = reason.get(value, reason.get(shown))
            return text if text is not None else f"{feature.description.rstrip('.')}: {shown}"
        return reason.format(value=shown)

    return said


# How a reason reads for each feature; a feature without a phrase falls back to its
# description in configs/features.yaml, so adding a feature never breaks reason codes.
PHRASES: dict[str, Callable[[float], str]] = {
    f.name: phrase for f in FEATURES if (phrase := _phrase(f)) is not None}
UNITS: dict[Scale, str] = {"probability": "", "log_odds": " log-odds"}


@dataclass(frozen=True)
class Reason:
    """One feature's push on the score, readable."""

    feature: str
    value: float
    contribution: float
    description: str
    text: str  # "card is 15 days old: +0.21"


@dataclass(frozen=True)
class Explanation:
    """A row's score split into a base value plus one contribution per feature."""

    scale: Scale  # what the contributions add up to: probability or log-odds
    base_value: float
    contributions: dict[str, float]  # FEATURE_NAMES order
    output: float  # base_value + sum(contributions): the model's output on `scale`
    probability: float  # P(fraud): `output`, or its sigmoid on the log-odds scale
    reasons: list[Reason]  # the largest |contribution| first


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def reason(feature: str, value: float, contribution: float, scale: Scale) -> Reason:
    """The reason code of one feature's contribution."""
    described = FEATURES_BY_NAME[feature].description
    phrase = PHRASES.get(feature)
    shown = FEATURES_BY_NAME[feature].decode(value)
    said = phrase(value) if phrase else f"{described.rstrip('.')}: {_shown(shown)}"
    return Reason(feature, value, contribution, described,
                  f"{said}: {contribution:+.2f}{UNITS[scale]}")


class TreeExplainer:
    """Explains one fitted tree ensemble; build once per model (compiling takes ~0.1 s)."""

    def __init__(self, est: Any, top: int = 3) -> None:
        # XGBoost and LightGBM compute the same TreeSHAP themselves (fraud/contrib.py).
        self.contrib = contributions(est)
        self.table = None if self.contrib else leaf_table(est)
        self.top = top

    def explain(self, x: Sequence[float]) -> Explanation:
        """Contributions, base value and the top reason codes for one row (FEATURE_NAMES order)."""
        if self.contrib is not None:
            (base, phi), scale = self.contrib(x), "log_odds"
        else:
            assert self.table is not None
            base, phi = shapley(self.table, x)
            scale = self.table.scale
        output = base + float(phi.sum())
        order = sorted(range(len(phi)), key=lambda j: (-abs(phi[j]), j))[: self.top]
        return Explanation(
            scale=scale,
            base_value=base,
            contributions={n: float(c) for n, c in zip(FEATURE_NAMES, phi, strict=True)},
            output=output,
            probability=float(expit(output)) if scale == "log_odds" else output,
            reasons=[reason(FEATURE_NAMES[j], float(x[j]), float(phi[j]), scale)
                     for j in order],
        )

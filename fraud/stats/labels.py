"""Selective labels: the per-user rows the ledger fills, the label rates by decision, and when
a verdict built on labelled rows alone is `label_bias`.

The decision decides which transactions get a label: an approved fraud comes back as a
chargeback; a declined one only when an analyst reviews it (and analysts pick the cases). Any
recall computed from labelled rows is then computed on a sample the deciding model selected
(Lakkaraju et al. 2017). Exploration (approving a random share of would-be declines with a
stored propensity p) makes the missing part observable; fraud/stats/ipw.py weights it.

THE ROW CONTRACT (`LabelUsers`, fields in `LABEL_FIELDS` order). One row per user for ONE
deciding policy: one arm in split mode; in shadow mode the deciding arm's decisions, with the
other model's flag on each. Over MATURE decisions only, i.e. older than the maturity window:
an approved decision's outcome is then known (a chargeback label, or legit if none); a
declined, unexplored one only if it is labelled. Row: (user_id, then the 13 sums as numbers).

- n: decisions
- flagged: the deciding model would decline (explored ones included)
- explored: flagged, but approved by exploration
- labelled_declined: flagged, not explored, with any label (review or other)
- labelled_approved: approved (model-approved or explored) with an explicit label
- fraud_approved: labelled fraud among model-approved, not explored
- fraud_explored_w: sum over explored of y / p (p: the stored propensity)
- explored_w: sum over explored of 1 / p
- fraud_declined_labelled: labelled fraud among labelled declined (reported; it never enters
  an unbiased estimate: the analysts chose those cases)
- other_flagged: shadow: the other model's flags over all n (0 in split mode)
- other_fraud_approved: shadow: sum over model-approved (not explored) of y * flag_other
- other_fraud_explored_w: shadow: sum over explored of y * flag_other / p
- other_flagged_explored_w: shadow: sum over explored of flag_other / p
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from fraud.stats.cluster import Ratio, one, user_codes

LABEL_FIELDS: tuple[str, ...] = (
    "n", "flagged", "explored", "labelled_declined", "labelled_approved", "fraud_approved",
    "fraud_explored_w", "explored_w", "fraud_declined_labelled", "other_flagged",
    "other_fraud_approved", "other_fraud_explored_w", "other_flagged_explored_w",
)


@dataclass(frozen=True)
class LabelUsers:
    """Per-user sums over one deciding policy's mature decisions (aligned arrays, one entry per
    user). `ids` (optional, not part of the sums; `from_rows` makes them
    fraud.stats.cluster.user_codes of the user ids) lets a user present under both arms, or in
    two periods, count as one cluster (fraud/stats/cluster.py)."""

    n: np.ndarray
    flagged: np.ndarray
    explored: np.ndarray
    labelled_declined: np.ndarray
    labelled_approved: np.ndarray
    fraud_approved: np.ndarray
    fraud_explored_w: np.ndarray
    explored_w: np.ndarray
    fraud_declined_labelled: np.ndarray
    other_flagged: np.ndarray
    other_fraud_approved: np.ndarray
    other_fraud_explored_w: np.ndarray
    other_flagged_explored_w: np.ndarray
    ids: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> LabelUsers:
        """From the ledger's rows: (user_id, *LABEL_FIELDS); NULL sums are 0."""
        cols = np.array([[float(v or 0) for v in r[1:]] for r in rows],
                        dtype=np.float64).reshape(len(rows), len(LABEL_FIELDS))
        ids = user_codes(r[0] for r in rows)
        return cls(**{name: cols[:, i] for i, name in enumerate(LABEL_FIELDS)}, ids=ids)

    @classmethod
    def empty(cls) -> LabelUsers:
        return cls.from_rows([])

    @property
    def users(self) -> int:
        return len(self.n)

    @property
    def declined(self) -> np.ndarray:
        """Flagged and actually declined (not explored)."""
        return self.flagged - self.explored

    @property
    def approved(self) -> np.ndarray:
        """Actually approved: model-approved or explored."""
        return self.n - self.flagged + self.explored

    @property
    def fraud_w(self) -> np.ndarray:
        """Horvitz-Thompson fraud per user: approved frauds plus explored frauds / p."""
        return self.fraud_approved + self.fraud_explored_w

    @property
    def fraud_users(self) -> int:
        """Users with labelled fraud that an estimate may use (approved or explored)."""
        return int(np.count_nonzero(self.fraud_w))


@dataclass(frozen=True)
class ArmLabels:
    """A look's label inputs: each deciding arm's rows (None: that arm decided nothing) and
    whether exploration is on (configs/ab.yaml `exploration.rate` > 0)."""

    model_a: LabelUsers | None = None
    model_b: LabelUsers | None = None
    exploring: bool = False

    def arms(self) -> dict[str, LabelUsers]:
        return {k: v for k, v in (("model_a", self.model_a), ("model_b", self.model_b))
                if v is not None and v.users > 0}


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def label_rates(u: LabelUsers, confidence: float = 0.95) -> dict[str, Any]:
    """The share of mature declined decisions with a label against the share of mature
    approved decisions whose outcome is known, each over users with a delta-method interval.

    `approved` is 1 by the maturity convention (no chargeback by maturity = legit);
    `approved_labelled` is the explicit-label share (chargebacks), reported for reading.
    `gap` = approved - declined: how much less the declines are observed.
    """
    z = _z(confidence)
    declined = one(Ratio(u.labelled_declined, u.declined), z)
    approved = one(Ratio(u.approved, u.approved), z)
    gap = None
    if declined["value"] is not None and approved["value"] is not None:
        gap = approved["value"] - declined["value"]
    return {"declined": declined, "approved": approved,
            "approved_labelled": one(Ratio(u.labelled_approved, u.approved), z),
            "declined_decisions": int(u.declined.sum()),
            "approved_decisions": int(u.approved.sum()), "gap": gap}


def gap(u: LabelUsers) -> float | None:
    """label_rates' gap alone (approved known - declined labelled), None if undefined."""
    declined, approved = float(u.declined.sum()), float(u.approved.sum())
    if declined <= 0 or approved <= 0:
        return None
    return 1.0 - float(u.labelled_declined.sum()) / declined


def label_bias(u: LabelUsers, margin: float, exploring: bool) -> bool | None:
    """True when exploration is off and the declined decisions' label rate falls short of the
    approved ones' by more than `margin` (point estimates); None when nothing was declined."""
    if exploring:
        return False
    g = gap(u)
    return None if g is None else g > margin


def arms_label_bias(labels: ArmLabels, margin: float) -> bool:
    """label_bias in either deciding arm (a verdict compares both arms' labelled rows)."""
    return any(label_bias(u, margin, labels.exploring) for u in labels.arms().values())


def arms_differ(labels: ArmLabels, margin: float) -> bool:
    """The two arms' declined label rates differ by more than `margin`: the arms' labelled rows
    are selected differently, so even the split comparison is biased."""
    gaps = [g for g in (gap(u) for u in labels.arms().values()) if g is not None]
    return len(gaps) == 2 and abs(gaps[0] - gaps[1]) > margin


def report(labels: ArmLabels, margin: float, confidence: float = 0.95) -> dict[str, Any]:
    """The `labels` block: per arm its label rates and label_bias; overall label_bias."""
    arms = labels.arms()
    return {"exploring": labels.exploring, "margin": margin,
            "per_arm": {arm: {**label_rates(u, confidence),
                              "label_bias": label_bias(u, margin, labels.exploring),
                              "fraud_declined_labelled": int(u.fraud_declined_labelled.sum())}
                        for arm, u in arms.items()},
            "label_bias": arms_label_bias(labels, margin)}

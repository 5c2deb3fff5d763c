"""Per-user aggregates summed per arm and allocation period: what every A/B statistic reads.

The ledger keeps one row per (experiment, period, arm, user) with the user's decisions,
flags, errors and mature confusion counts, and sums them (with squares and cross-products) in
one SQL query; the simulation sums numpy arrays with `ArmPeriod.from_users`. Both produce the
same `ArmPeriod`, and everything downstream (fraud/stats/users.py,
fraud/experiment/guardrails.py) is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from fraud.stats.ratio import RatioMoments

# The order of the sums the ledger's aggregate query returns (see `ArmPeriod.from_sums`).
SUM_COLUMNS: tuple[str, ...] = (
    "users", "decisions", "flagged", "errors", "labelled", "tp", "fp", "fn", "tn",
    "users_decided", "dd", "ff", "df",      # flag rate: x = decisions, y = flags
    "users_attempted", "aa", "ee", "ae",    # error rate: x = decisions + errors, y = errors
    "users_fraud", "pp", "tt", "pt",        # recall: x = tp + fn, y = tp
    "users_flagged_mature", "qq", "qt",     # precision: x = tp + fp, y = tp (tt reused)
)


@dataclass(frozen=True)
class ArmPeriod:
    """One arm in one allocation period: plain counts and the ratio metrics' moments."""

    users: int = 0
    decisions: int = 0
    flagged: int = 0
    errors: int = 0
    labelled: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    flag: RatioMoments = field(default_factory=RatioMoments)
    error: RatioMoments = field(default_factory=RatioMoments)
    recall: RatioMoments = field(default_factory=RatioMoments)
    precision: RatioMoments = field(default_factory=RatioMoments)

    @property
    def mature(self) -> int:
        """Decisions counted in recall/precision: labelled, or past the maturity window."""
        return self.tp + self.fp + self.fn + self.tn

    @classmethod
    def from_sums(cls, sums: Sequence[float | int | None]) -> ArmPeriod:
        """From the ledger's aggregate row, in SUM_COLUMNS order (NULL sums are 0)."""
        s = dict(zip(SUM_COLUMNS, (v or 0 for v in sums), strict=True))
        i = {k: int(v) for k, v in s.items()}
        return cls(
            users=i["users"], decisions=i["decisions"], flagged=i["flagged"],
            errors=i["errors"], labelled=i["labelled"], tp=i["tp"], fp=i["fp"], fn=i["fn"],
            tn=i["tn"],
            flag=RatioMoments(i["users_decided"], s["decisions"], s["flagged"], s["dd"],
                              s["ff"], s["df"]),
            error=RatioMoments(i["users_attempted"], s["decisions"] + s["errors"],
                               s["errors"], s["aa"], s["ee"], s["ae"]),
            recall=RatioMoments(i["users_fraud"], s["tp"] + s["fn"], s["tp"], s["pp"],
                                s["tt"], s["pt"]),
            precision=RatioMoments(i["users_flagged_mature"], s["tp"] + s["fp"], s["tp"],
                                   s["qq"], s["tt"], s["qt"]),
        )

    @classmethod
    def from_users(cls, decisions: np.ndarray, flags: np.ndarray, errors: np.ndarray,
                   labelled: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray,
                   tn: np.ndarray) -> ArmPeriod:
        """From aligned per-user arrays (one entry per user exposed in this arm and period)."""
        return cls(
            users=len(decisions), decisions=int(decisions.sum()), flagged=int(flags.sum()),
            errors=int(errors.sum()), labelled=int(labelled.sum()), tp=int(tp.sum()),
            fp=int(fp.sum()), fn=int(fn.sum()), tn=int(tn.sum()),
            flag=RatioMoments.from_arrays(decisions, flags),
            error=RatioMoments.from_arrays(decisions + errors, errors),
            recall=RatioMoments.from_arrays(tp + fn, tp),
            precision=RatioMoments.from_arrays(tp + fp, tp),
        )

    def __add__(self, other: ArmPeriod) -> ArmPeriod:
        """Pool disjoint users (e.g. the same arm over several periods, for reading)."""
        return ArmPeriod(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                            for f in fields(self)})


Periods = dict[int, dict[str, ArmPeriod]]
"""period id -> arm -> aggregates; an arm with no users in a period may be absent."""


# Per-user sums over the transactions both models scored (shadow mode): what the paired
# comparison (fraud/stats/paired.py) reads; the ledger fills it (fraud/store/paired.py).
FIELDS = ("n", "disagree", "flag_a", "flag_b", "mature", "fraud", "tp_a", "tp_b", "tp_both",
          "fp_a", "fp_b", "fraud_amount", "caught_amount_a", "caught_amount_b",
          "fp_amount_a", "fp_amount_b", "mature_amount")


@dataclass(frozen=True)
class PairedUsers:
    """Per-user sums over paired decisions (one array entry per user, aligned)."""

    n: np.ndarray  # paired decisions
    disagree: np.ndarray  # ... the two models decided differently
    flag_a: np.ndarray
    flag_b: np.ndarray
    mature: np.ndarray  # labelled, or past the maturity horizon (legit)
    fraud: np.ndarray  # labelled fraud
    tp_a: np.ndarray
    tp_b: np.ndarray
    tp_both: np.ndarray
    fp_a: np.ndarray  # flagged, mature and legit
    fp_b: np.ndarray
    fraud_amount: np.ndarray
    caught_amount_a: np.ndarray
    caught_amount_b: np.ndarray
    fp_amount_a: np.ndarray
    fp_amount_b: np.ndarray
    mature_amount: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> PairedUsers:
        cols = np.array([[float(v or 0) for v in r[1:]] for r in rows],
                        dtype=np.float64).reshape(len(rows), len(FIELDS))
        return cls(**{name: cols[:, i] for i, name in enumerate(FIELDS)})

    @property
    def users(self) -> int:
        return len(self.n)

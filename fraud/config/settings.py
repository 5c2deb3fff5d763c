"""Settings of the pure computations: the experiment statistics and the drift verdicts.

They live here, below the modules that use them (fraud/stats, fraud/drift.py), so that loading
configs/ab.yaml imports no domain code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import chi2

Metric = Literal["recall", "precision"]
PairedMetric = Literal["recall", "precision", "amount_recall", "expected_loss"]
PSI_BINS = 10


class StatsSettings(BaseModel):
    """Knobs for the experiment statistics; the defaults are the documented ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confidence: float = Field(0.95, gt=0.0, lt=1.0,
                              description="Level of the per-arm intervals.")
    srm_alpha: float = Field(0.001, gt=0.0, lt=1.0,
                             description="Sample-ratio mismatch when the anytime p < this.")
    srm_concentration: float = Field(100.0, gt=0.0,
                                     description="k of the Beta(k(1-s), ks) prior on the split.")
    sequential_alpha: float = Field(0.05, gt=0.0, lt=1.0,
                                    description="Error rate of the always-valid primary test.")
    mixture_tau: float = Field(0.1, gt=0.0,
                               description="SD of the N(0, tau^2) mixing prior on the effect.")
    min_labelled_per_arm: int = Field(30, ge=1,
                                      description="Mature metric trials per arm before a verdict.")
    min_users_per_arm: int = Field(10, ge=2,
                                   description="Users with metric trials per arm before a verdict.")
    equivalence_margin: float = Field(0.05, gt=0.0, lt=1.0,
                                      description="|effect| within this is 'no_difference'.")
    primary_metric: Metric = Field("recall", description="Metric of the primary comparison.")
    # Selective labels (fraud/stats/labels.py, docs/selective-labels.md).
    label_bias_margin: float = Field(
        0.1, gt=0.0, lt=1.0, description="Without exploration, a verdict is 'label_bias' when "
        "declined decisions are labelled this much less often than approved outcomes are known.")
    min_fraud_users_per_arm: int = Field(
        30, ge=2, description="Users with labelled fraud per arm (and in the paired test) before "
        "any verdict.")
    legit_decline_margin: float = Field(
        1.25, gt=1.0, description="Promotion needs the challenger's legit-decline rate shown "
        "below this multiple of the champion's (non-inferiority).")
    legit_decline_tau: float = Field(0.2, gt=0.0, description="Mixing SD on the log ratio of "
                                     "legit-decline rates.")
    same_flag_rate_min_frauds: int = Field(
        50, ge=1, description="Recall at the champion's flag rate is hidden below this many "
        "mature labelled frauds.")
    paired_metric: PairedMetric | None = Field(
        None, description="Overrides shadow.metric for the paired test; 'expected_loss' "
        "(lower is better) is chosen here.")


@dataclass(frozen=True)
class DriftSettings:
    """How much live traffic is judged and what counts as drift (configs/ab.yaml `drift:`).

    A feature drifts when its window differs from training beyond sampling noise (PSI's
    chi-square test or the KS test, each at `alpha`) or by a major PSI (>= psi_threshold).
    """

    window: int = 1000  # live rows kept per arm (the newest)
    min_rows: int = 500  # no verdict below this many rows
    psi_threshold: float = 0.25  # the usual "major shift" level (0.1: moderate)
    alpha: float = 0.001  # per feature, per test, per check: false-alarm rate of each test

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or self.psi_threshold <= 0:
            raise ValueError("drift alpha must be in (0, 1) and psi_threshold > 0")
        if not 1 <= self.min_rows <= self.window:
            raise ValueError("drift needs 1 <= min_rows <= window")
        noise = self.psi_critical(self.min_rows, None, PSI_BINS)
        if noise > self.psi_threshold:
            raise ValueError(f"drift min_rows {self.min_rows} is too small: PSI noise reaches "
                             f"{noise:.3f} > psi_threshold {self.psi_threshold} there")

    def psi_critical(self, n: int, m: int | None, bins: int) -> float:
        """PSI above which n live rows differ from m reference rows at `alpha`.

        Under no drift, PSI / (1/n + 1/m) is approximately chi-square with bins - 1 degrees of
        freedom (Yurdakul & Naranjo 2020); m = None means an exact reference.
        """
        return float(chi2.isf(self.alpha, max(bins - 1, 1)) * (1 / n + (1 / m if m else 0)))

    def ks_critical(self, n: int, m: int) -> float:
        """Two-sample KS critical value at `alpha` for n live and m reference rows.

        The asymptotic Kolmogorov distribution: c(alpha) * sqrt((n + m) / (n m)) with
        c(alpha) = sqrt(-ln(alpha / 2) / 2) (Smirnov 1948); conservative for discrete features.
        """
        return math.sqrt(-math.log(self.alpha / 2) / 2) * math.sqrt((n + m) / (n * m))

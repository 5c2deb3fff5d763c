"""The parts of one look's /ab-stats body that are read, not judged: each arm's counts,
metrics and latency, and the experiment's identity and shared state.

Pure: `fraud.experiment.live.Experiment.report` hands in what it read from the ledger and what
`judge` decided, and adds the verdict blocks beside these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fraud.config import ABConfig
from fraud.experiment import guardrails
from fraud.experiment.decisions import ArmModel
from fraud.experiment.state import ExperimentState
from fraud.stats import users as stats
from fraud.stats.aggregates import Periods
from fraud.store.records import ExperimentRecord


class ExperimentView(Protocol):
    """What the experiment block reads of `fraud.experiment.live.Experiment`."""

    id: int
    cfg: ABConfig
    record_: ExperimentRecord

    def configured_share(self) -> float: ...
    def effective_share(self) -> float: ...


def arm_block(cfg: ABConfig, periods: Periods, arm: str, model: ArmModel,
              latency: Sequence[float]) -> dict[str, Any]:
    """One arm: the reference's counts, tag, threshold, errors, latency and the metrics."""
    total = stats.pooled(periods, arm)
    lat = sorted(latency)
    return {
        "total_predictions": total.decisions,
        "fraud_count": total.flagged,
        "legit_count": total.decisions - total.flagged,
        "fraud_rate": total.flagged / total.decisions if total.decisions else 0.0,
        "model_tag": model.tag,
        "threshold": model.threshold,
        "errors": total.errors,
        "latency_p50_ms": guardrails.percentile(lat, 50),
        "latency_p95_ms": guardrails.percentile(lat, 95),
        **stats.arm_metrics(total, cfg.statistics.confidence),
    }


def experiment_block(exp: ExperimentView, state: ExperimentState, periods: Periods,
                     breaches: list[str]) -> dict[str, Any]:
    """The experiment's identity, share, period and rollback state, and the breaches now."""
    record = exp.record_
    return {
        "id": exp.id,
        "salt": exp.cfg.salt,
        "model_a": record.model_a,
        "model_b": record.model_b,
        "started_at": record.started_at,
        "configured_share": exp.configured_share(),
        "effective_share": exp.effective_share(),
        "period": state.period,
        "period_share": state.period_share,
        "period_started_at": state.period_started_at,
        "periods": sorted(periods),
        "rolled_back": state.rolled_back,
        "rollback_reason": state.rollback_reason,
        "rolled_back_at": state.rolled_back_at,
        "worse_overridden": state.worse_overridden,
        "maturity_days": exp.cfg.labels.maturity_days,
        "guardrail_breaches": breaches,
    }

"""One look at an experiment, from aggregates alone: its state, statistics and breaches.

`judge` is what every look runs: `/ab-stats` and the guardrail loop (fraud/experiment.py) and
the simulation (fraud/simulation.py) call it, so the simulation proves the service's rules.
`ExperimentState` is the shared, persisted state one look reads and extends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from fraud import guardrails, paired, stats
from fraud.aggregates import ArmPeriod, Periods
from fraud.config import ABConfig
from fraud.ledger import ExperimentRecord, Ledger, PairedUsers
from fraud.schema import ARMS, utc_now_iso
from fraud.sequential import Memory


@dataclass(frozen=True)
class ExperimentState:
    """Shared, persisted state of one experiment (JSON in the ledger, compare-and-set)."""

    rolled_back: bool = False
    rollback_reason: str | None = None
    rolled_back_at: str | None = None
    share_override: float | None = None
    period: int = 0
    period_share: float | None = None  # the share routed with during `period`
    period_started_at: str | None = None
    srm_p_min: float = 1.0  # running minimum of the current period's users test
    worse_overridden: bool = False  # a forced resume: "worse" no longer rolls back
    primary: dict[str, Any] = field(default_factory=dict)  # fraud.sequential.Memory
    paired: dict[str, Any] = field(default_factory=dict)  # the paired test's Memory

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> ExperimentState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (value or {}).items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def effective_share(cfg: ABConfig, state: ExperimentState) -> float:
    """The share `state` serves: 0 while rolled back, else the admin override or the config."""
    if state.rolled_back:
        return 0.0
    return cfg.challenger_share if state.share_override is None else state.share_override


def new_period(cfg: ABConfig, state: ExperimentState) -> ExperimentState:
    """`state` with a fresh allocation period routing with its effective share."""
    return replace(state, period=state.period + 1, period_share=effective_share(cfg, state),
                   period_started_at=utc_now_iso(), srm_p_min=1.0)


def summary(cfg: ABConfig, record: ExperimentRecord, periods: Periods) -> dict[str, Any]:
    """An experiment's statistics from its aggregates and its stored sequence memory."""
    state = ExperimentState.from_json(record.state)
    s = cfg.statistics
    primary, _ = stats.primary(periods, s, Memory.from_json(state.primary))
    current = periods.get(state.period, {})
    srm = stats.sample_ratio(current.get("model_a", ArmPeriod()).users,
                             current.get("model_b", ArmPeriod()).users, state.period_share, s,
                             state.srm_p_min)
    return {
        "id": record.id, "salt": record.salt, "model_a": record.model_a,
        "model_b": record.model_b, "started_at": record.started_at,
        "ended_at": record.ended_at, "end_reason": record.end_reason,
        "per_arm": {arm: stats.arm_metrics(stats.pooled(periods, arm), s.confidence)
                    for arm in ARMS},
        "sample_ratio": srm, "primary": primary, "verdict": primary["verdict"],
        "rolled_back": state.rolled_back, "rollback_reason": state.rollback_reason,
    }


@dataclass(frozen=True)
class Judgement:
    """One look at an experiment: its statistics, breaches and the state after the look."""

    primary: dict[str, Any]
    sample_ratio: dict[str, Any] | None
    breaches: list[str]
    state: ExperimentState


def judge(cfg: ABConfig, state: ExperimentState, periods: Periods,
          latency: tuple[Sequence[float], Sequence[float]] = ((), ()),
          paired_users: PairedUsers | None = None) -> Judgement:
    """Everything one look decides, from aggregates alone: the service (Experiment.report)
    and the simulation (fraud/simulation.py) both call this. With `paired_users` (shadow
    mode) the flag-rate and "worse" guardrails judge the paired transactions instead."""
    s, g = cfg.statistics, cfg.guardrails
    primary, memory = stats.primary(periods, s, Memory.from_json(state.primary))
    current = periods.get(state.period, {})
    srm = stats.sample_ratio(current.get("model_a", ArmPeriod()).users,
                             current.get("model_b", ArmPeriod()).users, state.period_share, s,
                             state.srm_p_min)
    if paired_users is None:
        worse = stats.primary_look(periods, s, g.alpha_worse)
    else:
        sh = cfg.shadow
        worse = paired.paired_look(paired_users, s, sh.metric,
                                   paired.Costs(sh.decline_fixed, sh.decline_share),
                                   g.alpha_worse)
    breaches = guardrails.breaches(current, srm, worse, latency, g,
                                   worse_overridden=state.worse_overridden,
                                   paired=paired_users)
    srm_p = srm["p_value"] if srm else state.srm_p_min
    return Judgement(primary, srm, breaches, replace(
        state, primary=memory.to_json(), srm_p_min=min(state.srm_p_min, srm_p)))


def list_experiments(cfg: ABConfig, ledger: Ledger) -> list[dict[str, Any]]:
    """Every experiment, newest first: ended ones with their stored final statistics, the
    open one computed now."""
    out = []
    for record in ledger.experiments():
        if record.final is not None and record.ended_at:  # frozen at its end
            out.append({**record.final, "ended_at": record.ended_at,
                        "end_reason": record.end_reason})
        else:
            out.append(summary(cfg, record, ledger.aggregates(record.id)))
    return out

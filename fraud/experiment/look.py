"""One look at an experiment, from aggregates alone: its statistics and breaches.

`judge` is what every look runs: `/ab-stats` and the guardrail loop (fraud/experiment/live.py) and
the simulation (simulations/ab.py) call it, so the simulation proves the service's rules.
It reads and extends the shared `ExperimentState` (fraud/experiment/state.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fraud.config import ABConfig
from fraud.experiment import guardrails
from fraud.experiment.state import ExperimentState
from fraud.schema import ARMS
from fraud.stats import paired, split
from fraud.stats import users as stats
from fraud.stats.aggregates import ArmPeriod, PairedUsers, Periods
from fraud.stats.labels import ArmLabels
from fraud.stats.periods import UserPeriods, period_rank, spent
from fraud.stats.sequential import Memory
from fraud.store.records import ExperimentRecord
from fraud.store.writer import Ledger


def summary(cfg: ABConfig, record: ExperimentRecord, periods: Periods, *,
            labels: ArmLabels | None = None,
            user_periods: UserPeriods | None = None) -> dict[str, Any]:
    """An experiment's statistics from its aggregates and its stored sequence memory."""
    state = ExperimentState.from_json(record.state)
    s = cfg.statistics
    primary, _ = split.primary(periods, s, Memory.from_json(state.primary),
                               user_periods=user_periods, labels=labels)
    current = periods.get(state.period, {})
    srm = stats.sample_ratio(current.get("model_a", ArmPeriod()).users,
                             current.get("model_b", ArmPeriod()).users, state.period_share, s,
                             state.srm_p_min, spent(s.srm_alpha, period_rank(periods,
                                                                            state.period)))
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
    """One look at an experiment: its statistics, breaches and the state after the look.

    `guardrail_tests`: what the rollback rules read (the worse looks, the harm test), for
    /ab-stats to show."""

    primary: dict[str, Any]
    sample_ratio: dict[str, Any] | None
    breaches: list[str]
    state: ExperimentState
    guardrail_tests: dict[str, Any] = field(default_factory=dict)


def judge(cfg: ABConfig, state: ExperimentState, periods: Periods,
          latency: tuple[Sequence[float], Sequence[float]] = ((), ()),
          paired_users: PairedUsers | None = None, *, labels: ArmLabels | None = None,
          user_periods: UserPeriods | None = None) -> Judgement:
    """Everything one look decides, from aggregates alone: the service (Experiment.report)
    and the simulations (simulations/ab.py, simulations/labels.py) call this.

    `paired_users` (shadow mode): the flag-rate and "worse" guardrails judge the paired
    transactions, and the split "worse" look is kept beside the paired one (half of
    `alpha_worse` each). `labels` (the per-user label rows, fraud/stats/labels.py): label_bias,
    the inverse-propensity verdicts with exploration on, and the customer-harm guardrail.
    `user_periods` (the per-user period rows): the primary variance clustered by user across
    periods. Both None: today's aggregates-only behaviour. The per-period rules spend alpha
    across periods (fraud/stats/periods.py)."""
    s, g = cfg.statistics, cfg.guardrails
    primary, memory = split.primary(periods, s, Memory.from_json(state.primary),
                                    user_periods=user_periods, labels=labels)
    current = periods.get(state.period, {})
    share = spent(1.0, period_rank(periods, state.period))
    srm = stats.sample_ratio(current.get("model_a", ArmPeriod()).users,
                             current.get("model_b", ArmPeriod()).users, state.period_share, s,
                             state.srm_p_min, s.srm_alpha * share)
    split_worse: dict[str, Any] | None = None
    if paired_users is None:
        worse = split.look(periods, s, g.alpha_worse, user_periods=user_periods,
                           labels=labels, rollback=True)
    else:
        sh = cfg.shadow
        worse = paired.paired_look(paired_users, s, sh.metric,
                                   paired.Costs(sh.decline_fixed, sh.decline_share),
                                   g.alpha_worse / 2, labels=labels)
        split_worse = split.look(periods, s, g.alpha_worse / 2, user_periods=user_periods,
                                 labels=labels, rollback=True)
    harm_test = None if labels is None else guardrails.legit_decline_test(
        periods, g, labels=labels, paired=paired_users)
    breaches = guardrails.breaches(current, srm, worse, latency, g,
                                   worse_overridden=state.worse_overridden,
                                   paired=paired_users, split_worse=split_worse, spend=share,
                                   harm_test=harm_test)
    srm_p = srm["p_value"] if srm else state.srm_p_min
    return Judgement(primary, srm, breaches, replace(
        state, primary=memory.to_json(), srm_p_min=min(state.srm_p_min, srm_p)),
        {"worse": worse, "split_worse": split_worse, "legit_decline": harm_test,
         "alpha_share": share})


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

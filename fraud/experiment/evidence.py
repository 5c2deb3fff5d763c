"""What a look reads beyond the running sums, and the /ab-stats blocks built from it.

- the label rows (fraud/stats/labels.py's `LabelUsers` contract), per deciding arm, over the
  MATURE decisions: older than `labels.maturity_days`. Without a maturity policy no decision is
  ever mature by age (an approved decision's outcome is never known), so there are no label
  rows, the look is judged as before, and the `labels` block says why;
- the per-user period rows (fraud/stats/periods.py's `UserPeriods`): the primary variance
  clustered by user across periods;
- `labels`: per arm and per decision taken (`flagged`: flagged and declined; `approved`:
  approved, explored ones included) the share of mature decisions with a label, each with a
  user-clustered interval (fraud.stats.labels.report), label_bias, and the labels by source;
- `exploration`: the settings, today's explored decisions and budget left (all experiments:
  the budget is per day), and per arm what exploration let through in this experiment.

`ArmLabels.exploring` is the configuration now (exploration on): the inverse-propensity
estimates are read only while exploration runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from fraud.config import ABConfig
from fraud.experiment.budget import day_start, utc_day
from fraud.stats import labels as lab
from fraud.stats.labels import ArmLabels, LabelUsers
from fraud.stats.periods import UserPeriods

DAY_S = 86_400


class EvidenceLedger(Protocol):
    """The ledger's reads (fraud/store/evidence.py, fraud/store/exploration.py)."""

    def label_users(self, experiment_id: int, before: float) -> dict[str, LabelUsers]: ...
    def user_periods(self, experiment_id: int) -> UserPeriods: ...
    def label_sources(self, experiment_id: int) -> dict[str, dict[str, int]]: ...
    def exploration_today(self, day: str, since: float) -> dict[str, Any]: ...
    def explored_totals(self, experiment_id: int) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class LookInputs:
    """A look's inputs beyond the aggregates (None: not available)."""

    labels: ArmLabels | None
    user_periods: UserPeriods | None
    mature_before: float | None  # epoch seconds; decisions before it are mature


def read(cfg: ABConfig, ledger: EvidenceLedger, experiment_id: int, now: float) -> LookInputs:
    """The label rows (with a maturity policy) and the per-user period rows."""
    periods = ledger.user_periods(experiment_id)
    days = cfg.labels.maturity_days
    if days is None:
        return LookInputs(None, periods, None)
    before = now - days * DAY_S
    arms = ledger.label_users(experiment_id, before)
    return LookInputs(ArmLabels(arms.get("model_a"), arms.get("model_b"),
                                exploring=cfg.exploration.on), periods, before)


def labels_block(cfg: ABConfig, inputs: LookInputs,
                 sources: dict[str, dict[str, int]]) -> dict[str, Any]:
    """/ab-stats `labels`: label rates by arm and decision taken, label_bias, sources."""
    s = cfg.statistics
    out: dict[str, Any] = {"maturity_days": cfg.labels.maturity_days, "sources": sources}
    if inputs.labels is None or inputs.mature_before is None:
        out.update(per_arm={}, label_bias=None, reason="labels.maturity_days is not set: no "
                   "decision is mature, so label rates by decision are not measured")
        return out
    if not inputs.labels.arms():
        out.update(per_arm={}, label_bias=None, mature_before=_iso(inputs.mature_before),
                   reason=f"no decision is older than labels.maturity_days "
                   f"({cfg.labels.maturity_days:g}) yet, so label rates by decision are not "
                   "measured yet (the paired route cannot promote until they are)")
        return out
    report = lab.report(inputs.labels, s.label_bias_margin, s.confidence)
    for rates in report["per_arm"].values():
        rates["by_decision"] = {"flagged": rates["declined"],
                                "approved": rates["approved_labelled"]}
    out.update(report, mature_before=_iso(inputs.mature_before))
    return out


def exploration_block(cfg: ABConfig, ledger: EvidenceLedger, experiment_id: int,
                      now: float) -> dict[str, Any]:
    """/ab-stats `exploration`: settings, today's spending, this experiment's explored."""
    ex = cfg.exploration
    out: dict[str, Any] = {"enabled": ex.on, "rate": ex.rate, "max_amount": ex.max_amount,
                           "daily_budget": ex.daily_budget}
    today = ledger.exploration_today(utc_day(now), day_start(now))
    leased = float(today.get("leased") or 0.0)
    today["budget_left"] = max(ex.daily_budget - leased, 0.0) if ex.on else None
    out["today"] = today
    out["per_arm"] = ledger.explored_totals(experiment_id)
    return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

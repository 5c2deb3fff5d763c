"""The experiment's shared, persisted state and the share it serves.

`ExperimentState` is JSON in the ledger, changed only by compare-and-set
(fraud/experiment/live.py); every look reads and extends it (fraud/experiment/look.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from fraud.config import ABConfig
from fraud.schema import utc_now_iso


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
    primary: dict[str, Any] = field(default_factory=dict)  # fraud.stats.sequential.Memory
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

"""One simulated experiment under real label mechanics, judged look by look by the service's own
code: fraud.experiment.look.judge (primary verdict, guardrails), fraud.stats.paired.paired (the
paired verdict, shadow mode) and fraud.experiment.promotion.promotion_refusal (on the report
those make), carrying the state and memories from look to look as the service does.

"Before" judges the same looks as the service did before the label rows existed (judge and
paired without them): the label-blind verdicts the issue measured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fraud.config import ABConfig, ShadowConfig
from fraud.experiment.look import judge
from fraud.experiment.promotion import evidence, promotion_refusal
from fraud.experiment.state import ExperimentState
from fraud.stats import paired
from fraud.stats import users as stats
from fraud.stats.sequential import Memory
from simulations.cohorts import LookInputs

DIFFERENT = ("challenger_better", "challenger_worse")
RULES = (("challenger worse", "worse"), ("challenger flag rate", "flag rate"),
         ("challenger error rate", "error rate"), ("sample-ratio", "sample ratio"),
         ("challenger declines legit", "legit declines"), ("challenger p95", "latency"))


def rule_of(breach: str) -> str:
    """The guardrail a breach message comes from (fraud/experiment/guardrails.py)."""
    return next((name for prefix, name in RULES if breach.startswith(prefix)), breach[:30])
NO_SCORES = np.zeros((0, 5))


@dataclass(frozen=True)
class Outcome:
    """What one simulated experiment showed (None: never)."""

    verdict: str | None  # the first better/worse verdict the tested route reported
    verdict_frauds: int | None  # labelled frauds (both arms) when it was reported
    label_bias: bool  # the route reported label_bias at some look
    rollback: str | None  # the rule of the first guardrail breach
    rollback_decisions: int | None  # decisions (both arms) at that look
    promoted: str | None  # the first look promotion_refusal allowed: its evidence route
    promoted_frauds: int | None
    before: str | None  # the first better/worse verdict of the label-blind route
    frauds: int  # labelled frauds at the end


def config(shadow: bool) -> ABConfig:
    return ABConfig(challenger_share=0.5, shadow=ShadowConfig(enabled=shadow))


def run(inputs: Iterator[LookInputs], shadow: bool, cfg: ABConfig | None = None) -> Outcome:
    """Judge every look; the tested route is the paired one in shadow mode, else the split."""
    cfg = cfg or config(shadow)
    s, sh = cfg.statistics, cfg.shadow
    costs = paired.Costs(sh.decline_fixed, sh.decline_share)
    state = ExperimentState(period=1, period_share=None)
    pmem = before_mem = Memory()
    found: dict[str, Any] = {}
    bias = False
    x: LookInputs | None = None
    for x in inputs:
        if state.period != x.period or state.period_share != x.share:
            state = replace(state, period=x.period, period_share=x.share, srm_p_min=1.0)
        seen = judge(cfg, state, x.periods, paired_users=x.paired, labels=x.labels,
                     user_periods=x.user_periods)
        state = seen.state
        report: dict[str, Any] = {"primary": seen.primary,
                                  "experiment": {"rolled_back": False}}
        if shadow:
            assert x.paired is not None
            report["paired"], pmem = paired.paired(x.paired, NO_SCORES, s, sh.metric, costs,
                                                   pmem, labels=x.labels)
            route = report["paired"]
            old, before_mem = paired.paired(x.paired, NO_SCORES, s, sh.metric, costs,
                                            before_mem)
        else:
            route = seen.primary
            old, before_mem = stats.primary(x.periods, s, before_mem)
        bias = bias or route["verdict"] == "label_bias"
        if route["verdict"] in DIFFERENT and "verdict" not in found:
            found["verdict"] = (route["verdict"], x.labelled_frauds)
        if old["verdict"] in DIFFERENT and "before" not in found:
            found["before"] = old["verdict"]
        if "promoted" not in found and promotion_refusal(report) is None:
            found["promoted"] = (evidence(report), x.labelled_frauds)
        if seen.breaches:
            found["rollback"] = (rule_of(seen.breaches[0]), x.decisions)
            break
    assert x is not None
    v, r, p = (found.get(k, (None, None)) for k in ("verdict", "rollback", "promoted"))
    return Outcome(v[0], v[1], bias, r[0], r[1], p[0], p[1], found.get("before"),
                   x.labelled_frauds)

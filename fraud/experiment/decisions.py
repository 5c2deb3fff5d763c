"""Scores into decisions: each model's own threshold, request ids, and the rows the ledger keeps.

No I/O: `fraud.experiment.live.Experiment` queues what `build` returns for the ledger and
answers with the predictions only once they are committed. With exploration on, a would-be
decline may be approved instead (fraud/experiment/exploration.py): the answer is the decision
actually taken, the stored row keeps the model's decision, the `explored` mark and the
propensity.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fraud.experiment.budget import Explorer
from fraud.experiment.exploration import NOT_ELIGIBLE
from fraud.experiment.state import ExperimentState
from fraud.schema import CHALLENGER, CHAMPION, Arm, Prediction
from fraud.store.records import Decision, Source

OTHER: dict[str, Arm] = {CHAMPION: CHALLENGER, CHALLENGER: CHAMPION}


@dataclass(frozen=True)
class ArmModel:
    """What serving needs to know of one arm's model, read from its store metadata."""

    arm: Arm
    tag: str
    threshold: float
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Scored:
    """One request's scores, ready to be decided: its rows' users, arms and probabilities,
    the state it was routed under, and in shadow mode the other model's scores."""

    user_ids: Sequence[str]
    arms: Sequence[Arm]
    probabilities: Sequence[float]
    latency_ms: float
    source: Source
    state: ExperimentState
    amounts: Sequence[float] | None = None
    shadow: Sequence[float] | None = None


def new_request_id() -> str:
    """32 hex chars, time-ordered (ms clock + 80 random bits): an append-only ledger index."""
    return new_request_ids(1)[0]


def new_request_ids(n: int) -> list[str]:
    """`n` request ids as `new_request_id` makes them, from one read of the system's random
    source (one read per id was a twentieth of a bulk request's work)."""
    clock = f"{time.time_ns() // 1_000_000:012x}"
    bits = secrets.token_hex(10 * n)
    return [clock + bits[i:i + 20] for i in range(0, 20 * n, 20)]


def decide(probability: float, threshold: float) -> bool:
    """The fraud decision: the model's own saved threshold, never a silent 0.5."""
    return probability >= threshold


def build(r: Scored, arms: Mapping[Arm, ArmModel], experiment_id: int, now: float,
          stamp: str, explorer: Explorer | None = None
          ) -> tuple[list[Prediction], list[Decision]]:
    """A request's answers and the decisions to store, row by row under its state's period.

    `shadow`: the other model's score per row, stored with its decision at its own threshold
    (NaN: the other model failed on that row; nothing is stored for it). Never answered.
    `explorer` (exploration on): an explored row is answered approved.
    """
    out: list[Prediction] = []
    decisions: list[Decision] = []
    n = len(r.user_ids)
    shadow = r.shadow if r.shadow is not None and len(r.shadow) == n else None
    latency = round(r.latency_ms, 3)
    ids = new_request_ids(n)
    for i, (user_id, arm, p) in enumerate(zip(r.user_ids, r.arms, r.probabilities,
                                              strict=True)):
        model = arms[arm]
        rid = ids[i]
        flagged = decide(float(p), model.threshold)
        other = None if shadow is None else float(shadow[i])
        if other is not None and not math.isfinite(other):
            other = None
        shadow_flag = None if other is None else decide(other, arms[OTHER[arm]].threshold)
        amount = None if r.amounts is None else float(r.amounts[i])
        choice = NOT_ELIGIBLE if explorer is None else explorer.choose(rid, flagged, amount,
                                                                        now)
        decisions.append(Decision(rid, now, user_id, arm, model.tag, float(p), flagged,
                                  r.latency_ms, r.source, experiment_id, r.state.period,
                                  amount, other, shadow_flag, choice.explored,
                                  choice.propensity))
        out.append(Prediction(request_id=rid, is_fraud=flagged and not choice.explored,
                              fraud_probability=round(float(p), 6), model_version=arm,
                              model_tag=model.tag, latency_ms=latency, timestamp=stamp))
    return out, decisions

"""What the ledger stores and answers, as plain types: decisions, label outcomes, experiments,
and the errors a write can end in. No storage code: the experiment's rules import these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from fraud.schema import Arm

Source = Literal["predict", "batch"]
SOURCES: tuple[str, str] = ("predict", "batch")


@dataclass(slots=True)
class Decision:
    """One scored transaction as the ledger stores it. Not frozen, though nothing changes one:
    one is built per decision, and a frozen dataclass's __init__ costs ten times as much
    (object.__setattr__ per field: 2.3 against 0.23 us)."""

    request_id: str
    ts: float  # epoch seconds
    user_id: str
    arm: Arm
    model_tag: str
    probability: float
    is_fraud: bool
    latency_ms: float
    source: Source
    experiment_id: int = 0
    period: int = 0
    amount: float | None = None  # the transaction's amount (money-weighted metrics)
    shadow_probability: float | None = None  # shadow mode: the other model's score
    shadow_is_fraud: bool | None = None  # ... and its decision at its own threshold
    explored: bool = False  # the model flagged it; exploration approved it instead
    propensity: float | None = None  # its chance of being explored (0: not eligible)


class LabelOutcome(StrEnum):
    """What `label()` did; compares equal to the plain strings."""

    CREATED = "created"  # stored
    DUPLICATE = "duplicate"  # same label already stored: nothing changed
    CONFLICT = "conflict"  # a different label already stored: nothing changed (HTTP 409)
    UNKNOWN = "unknown"  # no such decision (HTTP 404)


class LedgerUnavailable(RuntimeError):
    """The ledger cannot store decisions now (the cause is in the message)."""


class LedgerBusy(LedgerUnavailable):
    """A write waited longer than the ledger's `lock_wait` for the store's write lock, held by
    other writers: that one transaction failed (nothing of it was stored); the store is not
    down, so the ledger keeps taking writes."""


class DecisionRejected(ValueError):
    """The store refused a request's decisions for their content (e.g. text it cannot hold);
    nothing of that request was stored."""


@dataclass(frozen=True, slots=True)
class ScoringError:
    """One row whose scoring failed (or, `undecided`, a row of the same request left undecided
    for it: attempted all the same), counted against its arm and user, like a decision."""

    experiment_id: int
    period: int
    arm: Arm
    user_id: str
    undecided: bool = False  # not failed: left undecided because another row of its request did


@dataclass(frozen=True)
class ExperimentRecord:
    """One experiment as stored: identity, lifetime, shared state and its version."""

    id: int
    salt: str
    model_a: str
    model_b: str
    started_at: str
    ended_at: str | None
    end_reason: str | None
    state: dict[str, Any]
    version: int
    final: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ExperimentRecord:
        eid, salt, a, b, started, ended, reason, state, version, final = row
        return cls(eid, salt, a, b, started, ended, reason, json.loads(state or "{}"),
                   version, json.loads(final) if final else None)

    def identity(self) -> tuple[str, str, str]:
        return self.salt, self.model_a, self.model_b

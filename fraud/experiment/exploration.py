"""Exploration: approve a random, capped share of would-be declines, with a stored propensity.

The decision decides which transactions get a label (a declined fraud never comes back as a
chargeback), so recall measured on labelled rows is biased by the deciding model
(docs/selective-labels.md). Exploration approves an eligible would-be decline with probability
`rate`; its outcome then arrives like any approval's, and the estimators weight it by 1 / rate
(fraud/stats/ipw.py).

Pure and deterministic, so every decision can be audited and reproduced:

- the draw: u = first 8 bytes of SHA-256("explore:" salt ":" request_id) / 2^64, in [0, 1);
- eligible = the model flags AND amount <= max_amount AND the worker's budget lease covers the
  amount (fraud/experiment/budget.py: the day's budget, shared through the ledger);
- explored = eligible AND u < rate;
- propensity = rate when eligible, else 0.

The client's answer is the decision actually taken (approved when explored); the ledger keeps
the model's decision, the `explored` mark and the propensity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fraud.config.ab import ExplorationConfig

SCALE = float(2**64)


@dataclass(frozen=True)
class Choice:
    """What exploration did with one decision."""

    eligible: bool
    explored: bool
    propensity: float  # rate when eligible, else 0


NOT_ELIGIBLE = Choice(False, False, 0.0)


def draw(salt: str, request_id: str) -> float:
    """The decision's uniform draw in [0, 1), from the salt and its request id alone."""
    digest = hashlib.sha256(f"explore:{salt}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / SCALE


def candidate(cfg: ExplorationConfig, flagged: bool, amount: float | None) -> bool:
    """The model flags it and its amount is within max_amount (the budget aside)."""
    return (cfg.on and flagged and amount is not None and amount == amount  # not NaN
            and 0 <= amount <= cfg.max_amount)


def choose(cfg: ExplorationConfig, u: float, flagged: bool, amount: float | None,
           budget_covers: bool) -> Choice:
    """Eligibility, the outcome and the propensity of one decision with draw `u`;
    `budget_covers`: the worker's lease holds at least `amount`."""
    if not (candidate(cfg, flagged, amount) and budget_covers):
        return NOT_ELIGIBLE
    return Choice(True, u < cfg.rate, cfg.rate)


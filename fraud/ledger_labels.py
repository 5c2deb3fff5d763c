"""The ledger's decision side: what a decision is, and labels attached to decisions.

A mixin of `fraud.ledger.Ledger` (which owns the store's backend and the writer queue). A label
is stored once; the `labels_to_user_stats` trigger (fraud/ledger_sql.py) adds it to its user's
aggregates in the same transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from fraud import ledger_sql as sql
from fraud.ledger_backend import Backend
from fraud.schema import Arm

Source = Literal["predict", "batch"]
SOURCES: tuple[str, str] = ("predict", "batch")


@dataclass(frozen=True, slots=True)
class Decision:
    """One scored transaction as the ledger stores it."""

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


class LabelOutcome(StrEnum):
    """What `label()` did; compares equal to the plain strings."""

    CREATED = "created"  # stored
    DUPLICATE = "duplicate"  # same label already stored: nothing changed
    CONFLICT = "conflict"  # a different label already stored: nothing changed (HTTP 409)
    UNKNOWN = "unknown"  # no such decision (HTTP 404)


class LabelStore:
    """Labels and lookups; needs the host's backend, `flush` and `label_wait`."""

    backend: Backend
    label_wait: float
    flush_interval: float

    def flush(self) -> None:  # provided by Ledger
        raise NotImplementedError

    # -- labels -----------------------------------------------------------------------------

    def label(
        self, request_id: str, is_fraud: bool, *, wait: float | None = None
    ) -> LabelOutcome:
        """Store the label for a decision: created, duplicate, conflict or unknown.

        An unknown id is retried for up to `wait` s (default `label_wait`): another worker
        may still hold the decision in its queue.
        """
        deadline = time.monotonic() + (self.label_wait if wait is None else wait)
        poll = min(max(self.flush_interval / 5, 0.002), 0.05)
        while True:
            self.flush()
            outcome = self._try_label(request_id, bool(is_fraud))
            remaining = deadline - time.monotonic()
            if outcome is not LabelOutcome.UNKNOWN or remaining <= 0:
                return outcome
            time.sleep(min(poll, remaining))

    def _try_label(self, request_id: str, is_fraud: bool) -> LabelOutcome:
        with self.backend.read() as conn:  # cheap read first: unknown ids skip the write lock
            seen = conn.execute(
                "SELECT 1 FROM decisions WHERE request_id = ?", (request_id,)
            ).fetchone()
        if seen is None:
            return LabelOutcome.UNKNOWN
        with self.backend.write() as conn:  # check-insert-read is one locked transaction
            cur = conn.execute(
                "INSERT INTO labels (request_id, is_fraud, ts) VALUES (?, ?, ?)"
                " ON CONFLICT (request_id) DO NOTHING",
                (request_id, int(is_fraud), time.time()),
            )
            if cur.rowcount == 1:
                return LabelOutcome.CREATED
            stored = conn.execute(
                "SELECT is_fraud FROM labels WHERE request_id = ?", (request_id,)
            ).fetchone()[0]
        return LabelOutcome.DUPLICATE if bool(stored) == is_fraud else LabelOutcome.CONFLICT

    def get_label(self, request_id: str) -> bool | None:
        """The stored label of a decision, or None if it has none."""
        with self.backend.read() as conn:
            row = conn.execute(
                "SELECT is_fraud FROM labels WHERE request_id = ?", (request_id,)
            ).fetchone()
        return None if row is None else bool(row[0])

    # -- reads ------------------------------------------------------------------------------

    def lookup(self, request_id: str) -> Decision | None:
        """The stored decision with this id (after flushing this process's queue), or None."""
        self.flush()
        with self.backend.read() as conn:
            row = conn.execute(
                f"SELECT {sql.DECISION_COLUMNS} FROM decisions WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if row is None:
            return None
        rid, ts, user_id, arm, tag, prob, flagged, latency, source, eid, period, *rest = row
        amount, shadow_p, shadow_flag = rest
        return Decision(rid, ts, user_id, arm, tag, prob, bool(flagged), latency, source,
                        eid, period, amount, shadow_p,
                        None if shadow_flag is None else bool(shadow_flag))

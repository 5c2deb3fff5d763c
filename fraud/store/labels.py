"""The ledger's decision side: what a decision is, and labels attached to decisions.

A mixin of `fraud.store.writer.Ledger` (which owns the store's backend and the writer
queue). A label is stored once; the `labels_to_user_stats` trigger (fraud/store/ddl.py)
adds it to its user's aggregates in the same transaction.
"""

from __future__ import annotations

import time

from fraud.schema import LABEL_SOURCES
from fraud.store import sql
from fraud.store.backend import Backend
from fraud.store.records import Decision, LabelOutcome


class LabelStore:
    """Labels and lookups; needs the host's backend, `flush` and `label_wait`."""

    backend: Backend
    label_wait: float
    flush_interval: float

    def flush(self) -> None:  # provided by Ledger
        raise NotImplementedError

    # -- labels -----------------------------------------------------------------------------

    def label(
        self, request_id: str, is_fraud: bool, *, wait: float | None = None,
        source: str | None = None,
    ) -> LabelOutcome:
        """Store the label for a decision: created, duplicate, conflict or unknown. `source`
        (fraud.schema.LABEL_SOURCES, or None) is kept with it; a duplicate keeps the first.

        An unknown id is retried for up to `wait` s (default `label_wait`): another worker
        may still hold the decision in its queue.
        """
        if source is not None and source not in LABEL_SOURCES:
            raise ValueError(f"source must be one of {LABEL_SOURCES}, got {source!r}")
        deadline = time.monotonic() + (self.label_wait if wait is None else wait)
        poll = min(max(self.flush_interval / 5, 0.002), 0.05)
        while True:
            self.flush()
            outcome = self._try_label(request_id, bool(is_fraud), source)
            remaining = deadline - time.monotonic()
            if outcome is not LabelOutcome.UNKNOWN or remaining <= 0:
                return outcome
            time.sleep(min(poll, remaining))

    def _try_label(self, request_id: str, is_fraud: bool, source: str | None) -> LabelOutcome:
        with self.backend.read() as conn:  # cheap read first: unknown ids skip the write lock
            seen = conn.execute(
                "SELECT 1 FROM decisions WHERE request_id = ?", (request_id,)
            ).fetchone()
        if seen is None:
            return LabelOutcome.UNKNOWN
        with self.backend.write() as conn:  # check-insert-read is one locked transaction
            cur = conn.execute(sql.INSERT_LABEL, (request_id, int(is_fraud), time.time(), source))
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
        amount, shadow_p, shadow_flag, explored, propensity = rest
        return Decision(rid, ts, user_id, arm, tag, prob, bool(flagged), latency, source,
                        eid, period, amount, shadow_p,
                        None if shadow_flag is None else bool(shadow_flag), bool(explored),
                        propensity)

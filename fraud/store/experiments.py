"""The ledger's experiment side: per-user aggregates, maturity, and experiments with CAS state.

A mixin of `fraud.store.writer.Ledger` (which owns the store's backend and the writer queue):
everything here reads the aggregates the triggers keep (fraud/store/sql.py) or changes the
`experiments` table in one short transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from fraud.schema import ARMS
from fraud.stats.aggregates import SUM_COLUMNS, ArmPeriod, Periods
from fraud.store import sql
from fraud.store.backend import Backend
from fraud.store.records import ExperimentRecord


def with_undecided(sums: list[int | None]) -> ArmPeriod:
    """An ArmPeriod from the aggregate row: SUM_COLUMNS, then `undecided` (rows a bulk left
    undecided when another of its rows failed). The error rate's moments are over attempted =
    decisions + errors + undecided (fraud/store/ddl.py), so its linear sum takes them in too."""
    arm = ArmPeriod.from_sums(sums[:len(SUM_COLUMNS)])
    undecided = int(sums[len(SUM_COLUMNS)] or 0) if len(sums) > len(SUM_COLUMNS) else 0
    if not undecided:
        return arm
    return replace(arm, error=replace(arm.error, sx=arm.error.sx + undecided))


class ExperimentStore:
    """Aggregates and experiments; needs the host's backend and `flush`."""

    backend: Backend

    def flush(self) -> None:  # provided by Ledger
        raise NotImplementedError

    def aggregates(self, experiment_id: int, *, scan: bool = False) -> Periods:
        """Per period and arm, the sums over users of one experiment (this process flushed).

        Read from the running sums the triggers keep; `scan=True` recomputes them from the
        per-user rows instead (a check: both must agree).
        """
        self.flush()
        with self.backend.read() as conn:
            rows = conn.execute(sql.AGGREGATES_SCAN if scan else sql.AGGREGATES,
                                (experiment_id,)).fetchall()
        out: Periods = {}
        for period, arm, *sums in rows:  # PostgreSQL sums bigints as numeric: back to int
            out.setdefault(int(period), {})[arm] = with_undecided(
                [None if v is None else int(v) for v in sums])
        return out

    def latencies(self, experiment_id: int, period: int, limit: int) -> dict[str, list[float]]:
        """The latest `limit` single-prediction latencies (ms) per arm in one period."""
        with self.backend.read() as conn:
            return {arm: [r[0] for r in conn.execute(
                sql.LATENCIES, (experiment_id, period, arm, limit))] for arm in ARMS}

    def mature(self, before_ts: float) -> int:
        """Count unlabelled decisions older than `before_ts` as legit; how many matured."""
        self.flush()
        with self.backend.write(durable=False) as conn:
            conn.execute(sql.MATURE_COUNT, (before_ts,))
            return conn.execute(sql.MATURE_MARK, (before_ts,)).rowcount

    def prune(self, before_ts: float, *, batch: int = 1000, max_batches: int = 100) -> int:
        """Delete decisions older than `before_ts` (and their labels), oldest first, `batch`
        rows per short transaction, at most `max_batches`; how many went. The aggregates do
        not change (run `mature` first: an unlabelled decision is counted at maturity)."""
        total = 0
        for _ in range(max_batches):
            with self.backend.write(durable=False) as conn:
                picked = conn.execute(sql.PRUNE_PICK, (batch, before_ts)).fetchall()
                if not picked:
                    break
                conn.executemany(sql.PRUNE_LABEL, [(rid,) for _, rid in picked])
                conn.executemany(sql.PRUNE_DECISION, [(i,) for i, _ in picked])
            total += len(picked)
        return total

    # -- experiments ------------------------------------------------------------------------

    def current_experiment(self, identity: tuple[str, str, str],
                           started_at: str) -> tuple[ExperimentRecord, ExperimentRecord | None]:
        """The open experiment with this (salt, model A, model B), and the one it replaced.

        If the open experiment has another identity, it is ended (reason: what changed) and
        a new one starts, in one transaction: two workers starting together agree.
        """
        with self.backend.write() as conn:
            row = conn.execute(f"SELECT {sql.EXPERIMENT_COLUMNS} FROM experiments WHERE"
                               " ended_at IS NULL ORDER BY id DESC LIMIT 1").fetchone()
            old = ExperimentRecord.from_row(row) if row else None
            if old is not None and old.identity() == identity:
                return old, None
            if old is not None:
                changed = [name for name, x, y in zip(("salt", "model_a", "model_b"),
                                                      old.identity(), identity, strict=True)
                           if x != y]
                conn.execute("UPDATE experiments SET ended_at = ?, end_reason = ? WHERE id = ?",
                             (started_at, f"{', '.join(changed)} changed", old.id))
            new_id = conn.execute("INSERT INTO experiments (salt, model_a, model_b, started_at)"
                                  " VALUES (?, ?, ?, ?) RETURNING id",
                                  (*identity, started_at)).fetchone()[0]
        new = self.experiment(int(new_id or 0))
        assert new is not None
        return new, None if old is None else self.experiment(old.id)

    def experiment(self, experiment_id: int) -> ExperimentRecord | None:
        """One experiment by id, or None."""
        with self.backend.read() as conn:
            row = conn.execute(f"SELECT {sql.EXPERIMENT_COLUMNS} FROM experiments"
                               " WHERE id = ?", (experiment_id,)).fetchone()
        return ExperimentRecord.from_row(row) if row else None

    def experiments(self) -> list[ExperimentRecord]:
        """Every experiment, newest first."""
        with self.backend.read() as conn:
            rows = conn.execute(f"SELECT {sql.EXPERIMENT_COLUMNS} FROM experiments"
                                " ORDER BY id DESC").fetchall()
        return [ExperimentRecord.from_row(r) for r in rows]

    def compare_and_set(self, experiment_id: int, version: int, state: dict[str, Any],
                        *, durable: bool = True) -> bool:
        """Store `state` if the experiment is open and still at `version`; False otherwise.

        `durable` (rollback, share, resume) syncs to disk before returning; a look's sequence
        memory is written without that wait (an fsync every look stalled the writer thread,
        and with it every request waiting for its commit).
        """
        return self._write_experiment(
            "UPDATE experiments SET state = ?, version = version + 1"
            " WHERE id = ? AND version = ? AND ended_at IS NULL",
            (json.dumps(state, sort_keys=True), experiment_id, version), durable=durable)

    def finish(self, experiment_id: int, ended_at: str | None, reason: str | None,
               final: dict[str, Any]) -> None:
        """Store an experiment's final report (and end it if `ended_at` is given)."""
        self._write_experiment(
            "UPDATE experiments SET final = ?, ended_at = COALESCE(ended_at, ?),"
            " end_reason = COALESCE(end_reason, ?) WHERE id = ?",
            (json.dumps(final, sort_keys=True), ended_at, reason, experiment_id))

    def _write_experiment(self, statement: str, params: tuple[Any, ...], *,
                          durable: bool = True) -> bool:
        with self.backend.write(durable=durable) as conn:
            return conn.execute(statement, params).rowcount == 1

    # -- experiment state -------------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        """The JSON value stored under `key`, or None."""
        with self.backend.read() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_state(self, key: str, value: dict[str, Any]) -> None:
        """Store `value` under `key`, durably (survives power loss)."""
        text = json.dumps(value, sort_keys=True)
        with self.backend.write() as conn:
            conn.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (key, text, time.time()),
            )

"""The ledger's experiment side: per-user aggregates, maturity, and experiments with CAS state.

A mixin of `fraud.ledger.SQLiteLedger` (which owns the connections, their locks and the writer
queue): everything here reads the aggregates the triggers keep (fraud/ledger_sql.py) or changes
the `experiments` table in one short transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from fraud import ledger_sql as sql
from fraud.aggregates import ArmPeriod, Periods
from fraud.schema import ARMS


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


class ExperimentStore:
    """Aggregates and experiments; needs the host's connections, locks and `flush`."""

    _wlock: threading.Lock
    _rlock: threading.Lock
    _wconn: sqlite3.Connection
    _rconn: sqlite3.Connection

    def flush(self) -> None:  # provided by SQLiteLedger
        raise NotImplementedError

    def aggregates(self, experiment_id: int, *, scan: bool = False) -> Periods:
        """Per period and arm, the sums over users of one experiment (this process flushed).

        Read from the running sums the triggers keep; `scan=True` recomputes them from the
        per-user rows instead (a check: both must agree).
        """
        self.flush()
        with self._rlock:
            rows = self._rconn.execute(sql.AGGREGATES_SCAN if scan else sql.AGGREGATES,
                                       (experiment_id,)).fetchall()
        out: Periods = {}
        for period, arm, *sums in rows:
            out.setdefault(int(period), {})[arm] = ArmPeriod.from_sums(sums)
        return out

    def latencies(self, experiment_id: int, period: int, limit: int) -> dict[str, list[float]]:
        """The latest `limit` single-prediction latencies (ms) per arm in one period."""
        with self._rlock:
            return {arm: [r[0] for r in self._rconn.execute(
                sql.LATENCIES, (experiment_id, period, arm, limit))] for arm in ARMS}

    def mature(self, before_ts: float) -> int:
        """Count unlabelled decisions older than `before_ts` as legit; how many matured."""
        self.flush()
        with self._wlock:
            conn = self._wconn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(sql.MATURE_COUNT, (before_ts,))
                n = conn.execute(sql.MATURE_MARK, (before_ts,)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return n

    # -- experiments ------------------------------------------------------------------------

    def current_experiment(self, identity: tuple[str, str, str],
                           started_at: str) -> tuple[ExperimentRecord, ExperimentRecord | None]:
        """The open experiment with this (salt, model A, model B), and the one it replaced.

        If the open experiment has another identity, it is ended (reason: what changed) and
        a new one starts, in one transaction: two workers starting together agree.
        """
        with self._wlock:
            conn = self._wconn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(f"SELECT {sql.EXPERIMENT_COLUMNS} FROM experiments WHERE"
                                   " ended_at IS NULL ORDER BY id DESC LIMIT 1").fetchone()
                old = ExperimentRecord.from_row(row) if row else None
                if old is not None and old.identity() == identity:
                    conn.execute("COMMIT")
                    return old, None
                if old is not None:
                    changed = [name for name, x, y in zip(("salt", "model_a", "model_b"),
                                                          old.identity(), identity, strict=True)
                               if x != y]
                    conn.execute("UPDATE experiments SET ended_at = ?, end_reason = ?"
                                 " WHERE id = ?", (started_at, f"{', '.join(changed)} changed",
                                                   old.id))
                cur = conn.execute("INSERT INTO experiments (salt, model_a, model_b,"
                                   " started_at) VALUES (?, ?, ?, ?)", (*identity, started_at))
                new_id = cur.lastrowid
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        new = self.experiment(int(new_id or 0))
        assert new is not None
        return new, None if old is None else self.experiment(old.id)

    def experiment(self, experiment_id: int) -> ExperimentRecord | None:
        """One experiment by id, or None."""
        with self._rlock:
            row = self._rconn.execute(f"SELECT {sql.EXPERIMENT_COLUMNS} FROM experiments"
                                      " WHERE id = ?", (experiment_id,)).fetchone()
        return ExperimentRecord.from_row(row) if row else None

    def experiments(self) -> list[ExperimentRecord]:
        """Every experiment, newest first."""
        with self._rlock:
            rows = self._rconn.execute(f"SELECT {sql.EXPERIMENT_COLUMNS} FROM experiments"
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
        with self._wlock:
            conn = self._wconn
            if not durable:
                return conn.execute(statement, params).rowcount == 1
            conn.execute("PRAGMA synchronous = FULL")  # state changes survive power loss
            try:
                return conn.execute(statement, params).rowcount == 1
            finally:
                conn.execute("PRAGMA synchronous = NORMAL")

    # -- experiment state -------------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        """The JSON value stored under `key`, or None."""
        with self._rlock:
            row = self._rconn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_state(self, key: str, value: dict[str, Any]) -> None:
        """Store `value` under `key`, committed with synchronous=FULL (survives power loss)."""
        text = json.dumps(value, sort_keys=True)
        with self._wlock:
            conn = self._wconn
            conn.execute("PRAGMA synchronous = FULL")
            try:
                conn.execute(
                    "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                    " updated_at = excluded.updated_at",
                    (key, text, time.time()),
                )
            finally:
                conn.execute("PRAGMA synchronous = NORMAL")

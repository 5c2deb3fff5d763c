"""The decision/label ledger: decisions, labels, experiments and per-user aggregates in SQLite.

Writes leave the request path: `record()` only enqueues and a daemon writer thread flushes in
batches. Several worker processes may open their own Ledger on the same file (WAL mode). The
per-user aggregates /ab-stats reads are kept by triggers in the writing transactions
(fraud/ledger_sql.py), so they are exact across workers, and experiment state changes by
compare-and-set. No BentoML dependency: the service imports this, not the other way round.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from fraud import ledger_sql as sql
from fraud.aggregates import ArmPeriod, Periods
from fraud.schema import ARMS, Arm

__all__ = [
    "Decision",
    "ExperimentRecord",
    "LabelOutcome",
    "SQLiteLedger",
    "Source",
]

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class ScoringError:
    """One row whose scoring failed: counted against its arm and user, like a decision."""

    experiment_id: int
    period: int
    arm: Arm
    user_id: str


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


class LabelOutcome(StrEnum):
    """What `label()` did; compares equal to the plain strings."""

    CREATED = "created"  # stored
    DUPLICATE = "duplicate"  # same label already stored: nothing changed
    CONFLICT = "conflict"  # a different label already stored: nothing changed (HTTP 409)
    UNKNOWN = "unknown"  # no such decision (HTTP 404)


_Row = tuple[str, float, str, str, str, float, int, float, str, int, int]


def _to_row(d: Decision) -> _Row:
    if d.arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {d.arm!r}")
    if d.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {d.source!r}")
    return (
        str(d.request_id), float(d.ts), str(d.user_id), d.arm, str(d.model_tag),
        float(d.probability), 1 if d.is_fraud else 0, float(d.latency_ms), d.source,
        int(d.experiment_id), int(d.period),
    )


class SQLiteLedger:
    """Ledger on an embedded SQLite file (WAL); open one per process, share the file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.05,
        max_batch: int = 1000,
        latency_window: int = 10_000,
        label_wait: float | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        """Open (creating if needed) the ledger at `path` and start its writer thread.

        `label_wait` bounds how long `label()` retries an unknown id (default 3 x interval).
        """
        if flush_interval <= 0 or max_batch < 1 or latency_window < 1:
            raise ValueError("flush_interval, max_batch and latency_window must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.latency_window = latency_window
        self.label_wait = 3 * flush_interval if label_wait is None else label_wait
        self.busy_timeout = busy_timeout

        self._pending: deque[_Row] = deque()
        self._pending_errors: deque[ScoringError] = deque()
        self._accept_lock = threading.Lock()  # orders record() against close()
        self._closed = False
        self._closed_reason = "ledger is closed"
        self._wake = threading.Event()
        self._stop = threading.Event()

        # Two connections shared by this process's threads, each behind its own lock:
        # writes (writer thread, flush, label, set_state) and reads (stats, lookup, state).
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._wconn = self._connect()
        self._init_schema()
        self._rconn = self._connect()

        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _disown_after_fork(ref))

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        deadline = time.monotonic() + self.busy_timeout
        while True:  # switching to WAL takes a lock another process may hold briefly
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise RuntimeError(f"could not put {self.path} in WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _init_schema(self) -> None:
        with self._wlock:
            conn = self._wconn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.OBSOLETE:
                    conn.execute(statement)
                for statement in _split_sql(sql.SCHEMA + sql.MOMENTS_SCHEMA):
                    conn.execute(statement)
                for table, columns in sql.MIGRATIONS.items():
                    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                    for name, decl in columns:
                        if name not in have:
                            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                for statement in _split_sql(sql.INDEXES):
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- writes -----------------------------------------------------------------------------

    def record(self, decisions: Iterable[Decision] | Decision) -> None:
        """Enqueue decisions for the background writer; never touches the database."""
        if isinstance(decisions, Decision):
            decisions = (decisions,)
        rows = [_to_row(d) for d in decisions]
        with self._accept_lock:
            if self._closed:
                raise RuntimeError(self._closed_reason)
            self._pending.extend(rows)
        if len(self._pending) >= self.max_batch:
            self._wake.set()

    def record_errors(self, errors: Iterable[ScoringError]) -> None:
        """Count rows whose scoring failed, per arm and user (enqueued like decisions)."""
        checked = []
        for e in errors:
            if e.arm not in ARMS:
                raise ValueError(f"arm must be one of {ARMS}, got {e.arm!r}")
            user = str(e.user_id)
            user.encode()  # refuse what SQLite could not store, here rather than in the writer
            checked.append(ScoringError(int(e.experiment_id), int(e.period), e.arm, user))
        with self._accept_lock:
            if self._closed:
                raise RuntimeError(self._closed_reason)
            self._pending_errors.extend(checked)
        if len(self._pending_errors) >= self.max_batch:
            self._wake.set()

    def pending(self) -> int:
        """Rows (decisions and errors) enqueued in this process and not yet written."""
        return len(self._pending) + len(self._pending_errors)

    def flush(self) -> None:
        """Write everything this process enqueued before the call; return once committed."""
        with self._wlock:
            self._drain_locked()

    def close(self) -> None:
        """Flush everything accepted, stop the writer thread and close the connections."""
        with self._accept_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._stop.set()
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
        except Exception:
            log.exception("ledger: final flush failed; %d rows lost", self.pending())
            raise
        finally:
            with self._wlock:
                self._wconn.close()
            with self._rlock:
                self._rconn.close()

    def __enter__(self) -> SQLiteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                return  # close() does the final flush
            try:
                self.flush()
            except Exception:
                log.exception("ledger: background flush failed; will retry")
                self._stop.wait(min(1.0, 10 * self.flush_interval))

    def _drain_locked(self) -> None:
        # Only what is waiting now: a steady stream of records must not starve the caller.
        todo = len(self._pending)
        errors = self._take(self._pending_errors, len(self._pending_errors))
        while True:
            rows = self._take(self._pending, min(todo, self.max_batch))
            todo -= len(rows)
            if not rows and not errors:
                return
            try:
                self._write(rows, errors)
            except BaseException:
                self._pending.extendleft(reversed(rows))
                self._pending_errors.extendleft(reversed(errors))
                raise
            errors = []

    @staticmethod
    def _take(queue: deque[Any], n: int) -> list[Any]:
        # Only the lock holder pops, so `n <= len(queue)` stays true while we pop.
        return [queue.popleft() for _ in range(n)]

    def _write(self, rows: list[_Row], errors: list[ScoringError]) -> None:
        conn = self._wconn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                self._insert(rows)
            if errors:
                counts = Counter((e.experiment_id, e.period, e.arm, e.user_id) for e in errors)
                conn.executemany(sql.UPSERT_ERRORS, [(*key, n) for key, n in counts.items()])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _insert(self, rows: list[_Row]) -> int:
        """Insert decisions (duplicate request_ids ignored); return how many were new.

        The `decisions_count` trigger adds each new row to its user's aggregates.
        """
        conn = self._wconn
        conn.execute("SAVEPOINT batch")
        try:
            inserted = conn.executemany(sql.INSERT_DECISION, rows).rowcount
        except sqlite3.OperationalError:
            raise
        except Exception:  # a poison row (e.g. unencodable text): isolate and drop it
            conn.execute("ROLLBACK TO batch")
            inserted = 0
            for row in rows:
                try:
                    inserted += conn.execute(sql.INSERT_DECISION, row).rowcount
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:
                    log.error("ledger: dropping unwritable decision %r: %s", row[0], exc)
        conn.execute("RELEASE batch")
        return inserted

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
        with self._rlock:  # cheap read first: unknown ids must not take the write lock
            seen = self._rconn.execute(
                "SELECT 1 FROM decisions WHERE request_id = ?", (request_id,)
            ).fetchone()
        if seen is None:
            return LabelOutcome.UNKNOWN
        with self._wlock:
            conn = self._wconn
            conn.execute("BEGIN IMMEDIATE")  # check-insert-read is one locked transaction
            try:
                cur = conn.execute(
                    "INSERT INTO labels (request_id, is_fraud, ts) VALUES (?, ?, ?)"
                    " ON CONFLICT (request_id) DO NOTHING",
                    (request_id, int(is_fraud), time.time()),
                )
                if cur.rowcount == 1:
                    outcome = LabelOutcome.CREATED
                else:
                    stored = conn.execute(
                        "SELECT is_fraud FROM labels WHERE request_id = ?", (request_id,)
                    ).fetchone()[0]
                    same = bool(stored) == is_fraud
                    outcome = LabelOutcome.DUPLICATE if same else LabelOutcome.CONFLICT
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return outcome

    def get_label(self, request_id: str) -> bool | None:
        """The stored label of a decision, or None if it has none."""
        with self._rlock:
            row = self._rconn.execute(
                "SELECT is_fraud FROM labels WHERE request_id = ?", (request_id,)
            ).fetchone()
        return None if row is None else bool(row[0])

    # -- reads ------------------------------------------------------------------------------

    def lookup(self, request_id: str) -> Decision | None:
        """The stored decision with this id (after flushing this process's queue), or None."""
        self.flush()
        with self._rlock:
            row = self._rconn.execute(
                f"SELECT {sql.DECISION_COLUMNS} FROM decisions WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if row is None:
            return None
        rid, ts, user_id, arm, tag, prob, flagged, latency, source, eid, period = row
        return Decision(rid, ts, user_id, arm, tag, prob, bool(flagged), latency, source,
                        eid, period)

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

    def compare_and_set(self, experiment_id: int, version: int, state: dict[str, Any]) -> bool:
        """Store `state` if the experiment is open and still at `version`; False otherwise."""
        return self._write_experiment(
            "UPDATE experiments SET state = ?, version = version + 1"
            " WHERE id = ? AND version = ? AND ended_at IS NULL",
            (json.dumps(state, sort_keys=True), experiment_id, version))

    def finish(self, experiment_id: int, ended_at: str | None, reason: str | None,
               final: dict[str, Any]) -> None:
        """Store an experiment's final report (and end it if `ended_at` is given)."""
        self._write_experiment(
            "UPDATE experiments SET final = ?, ended_at = COALESCE(ended_at, ?),"
            " end_reason = COALESCE(end_reason, ?) WHERE id = ?",
            (json.dumps(final, sort_keys=True), ended_at, reason, experiment_id))

    def _write_experiment(self, statement: str, params: tuple[Any, ...]) -> bool:
        with self._wlock:
            conn = self._wconn
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


def _split_sql(script: str) -> list[str]:
    """Split a schema script into statements (triggers keep their inner semicolons)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


def _disown_after_fork(ref: weakref.ref[SQLiteLedger]) -> None:
    """In a forked child, the parent's ledger has no writer thread: refuse further records."""
    ledger = ref()
    if ledger is None:
        return
    ledger._accept_lock = threading.Lock()
    ledger._wlock = threading.Lock()
    ledger._rlock = threading.Lock()
    ledger._pending = deque()  # the parent writes its own queue, never the child
    ledger._pending_errors = deque()
    ledger._closed = True
    ledger._closed_reason = (
        "this Ledger was opened before fork(); open a new one in each worker process"
    )
    atexit.unregister(ledger.close)

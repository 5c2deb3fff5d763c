"""The decision/label ledger: decisions, labels, experiments and per-user aggregates in SQLite.

Writes leave the request path: `record()` only enqueues and a daemon writer thread flushes in
batches. Several worker processes may open their own Ledger on the same file (WAL mode). The
per-user aggregates /ab-stats reads are kept by triggers in the writing transactions
(fraud/ledger_sql.py), so they are exact across workers, and experiment state changes by
compare-and-set. No BentoML dependency: the service imports this, not the other way round.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud import ledger_sql as sql
from fraud.ledger_experiments import ExperimentRecord, ExperimentStore
from fraud.ledger_labels import SOURCES, Decision, LabelOutcome, LabelStore, Source
from fraud.schema import ARMS, Arm

__all__ = [
    "Decision",
    "ExperimentRecord",
    "LabelOutcome",
    "SQLiteLedger",
    "Source",
]

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class ScoringError:
    """One row whose scoring failed: counted against its arm and user, like a decision."""

    experiment_id: int
    period: int
    arm: Arm
    user_id: str


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


class SQLiteLedger(LabelStore, ExperimentStore):
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

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
from concurrent.futures import Future
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
    "LedgerUnavailable",
    "SQLiteLedger",
    "Source",
]

log = logging.getLogger(__name__)


class LedgerUnavailable(RuntimeError):
    """The ledger cannot store decisions now (the cause is in the message)."""



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
        max_pending: int = 20_000,
    ) -> None:
        """Open (creating if needed) the ledger at `path` and start its writer thread.

        `label_wait` bounds how long `label()` retries an unknown id (default 3 x interval);
        `max_pending` bounds the rows waiting for their commit (memory stays bounded when the
        database cannot be written: `record` refuses beyond it).
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

        self.max_pending = max_pending
        # Each record() call is one group: its rows and the future its caller waits on.
        self._pending: deque[tuple[list[_Row], Future[None]]] = deque()
        self._pending_rows = 0
        self._pending_errors: deque[ScoringError] = deque()
        self.problem: str | None = None  # why the last write failed; None once one succeeds
        self.write_failures = 0
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

    def record(self, decisions: Iterable[Decision] | Decision) -> Future[None]:
        """Queue decisions for the writer thread; the future completes once they are committed
        (group commit: the writer commits everything queued since its last commit in one
        transaction) or fails with LedgerUnavailable. Callers answer only after it completes.
        """
        if isinstance(decisions, Decision):
            decisions = (decisions,)
        rows = [_to_row(d) for d in decisions]
        done: Future[None] = Future()
        with self._accept_lock:
            if self._closed:
                raise RuntimeError(self._closed_reason)
            if self._pending_rows + len(rows) > self.max_pending:
                raise LedgerUnavailable(f"{self._pending_rows} decisions already wait for "
                                        f"their commit to {self.path}"
                                        + (f" ({self.problem})" if self.problem else ""))
            self._pending.append((rows, done))
            self._pending_rows += len(rows)
        self._wake.set()
        return done

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

    def probe(self) -> bool:
        """One small real write (a heartbeat row): clears `problem` when the store can be
        written again, sets it when not. The service calls it while it refuses traffic."""
        try:
            with self._wlock:
                self._wconn.execute(
                    "INSERT INTO state (key, value, updated_at) VALUES (?, '{}', ?)"
                    " ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at",
                    (f"heartbeat:{os.getpid()}", time.time()))
        except sqlite3.Error as exc:
            self.problem = f"{type(exc).__name__}: {exc}"
            return False
        self.problem = None
        return True

    def pending(self) -> int:
        """Rows (decisions and errors) enqueued in this process and not yet written."""
        return self._pending_rows + len(self._pending_errors)

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
            except Exception:  # already reported to the waiting callers and in `problem`
                self._stop.wait(min(1.0, 10 * self.flush_interval))

    def _drain_locked(self) -> None:
        # Only what is waiting now: a steady stream of records must not starve the caller.
        todo = len(self._pending)
        errors = self._take(self._pending_errors, len(self._pending_errors))
        while True:
            groups: list[tuple[list[_Row], Future[None]]] = []
            n = 0
            while todo and (not groups or n + len(self._pending[0][0]) <= self.max_batch):
                groups.append(self._pending.popleft())
                n += len(groups[-1][0])
                todo -= 1
            if not groups and not errors:
                return
            try:
                self._write([row for rows, _ in groups for row in rows], errors)
            except Exception as exc:
                self._failed(exc, groups, errors)
                raise LedgerUnavailable(f"cannot write to {self.path}: {self.problem}") from exc
            except BaseException as exc:
                self._failed(exc, groups, errors)
                raise
            finally:
                with self._accept_lock:
                    self._pending_rows -= n
            if self.problem:
                log.warning("ledger: writing to %s again", self.path)
            self.problem = None
            for _, done in groups:
                done.set_result(None)
            errors = []

    def _failed(self, exc: BaseException, groups: list[tuple[list[_Row], Future[None]]],
                errors: list[ScoringError]) -> None:
        """A failed commit: its callers get the cause (they answer with an error, so their
        decisions are not kept for later); error counts are kept for the next attempt."""
        self.write_failures += 1
        self.problem = f"{type(exc).__name__}: {exc}"
        log.error("ledger: cannot write to %s: %s", self.path, self.problem)
        failure = LedgerUnavailable(f"cannot write to {self.path}: {self.problem}")
        for _, done in groups:
            done.set_exception(failure)
        keep = errors[-self.max_pending:]
        self._pending_errors.extendleft(reversed(keep))

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
    ledger._pending_rows = 0
    ledger._pending_errors = deque()
    ledger._closed = True
    ledger._closed_reason = (
        "this Ledger was opened before fork(); open a new one in each worker process"
    )
    atexit.unregister(ledger.close)

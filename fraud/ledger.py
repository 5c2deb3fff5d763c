"""The decision/label ledger: every decision, label and scoring error, persisted in SQLite.

Writes leave the request path: `record()` only enqueues and a daemon writer thread flushes in
batches. Several worker processes may open their own Ledger on the same file (WAL mode); the
aggregates for /ab-stats are counters kept in SQL in the writing transactions, so exact
across workers. No BentoML dependency: the service imports this, not the other way round.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
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
from typing import Any, Literal, Protocol, runtime_checkable

from fraud.schema import ARMS, Arm

__all__ = [
    "ArmAggregate",
    "Decision",
    "LabelOutcome",
    "Ledger",
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


@dataclass(frozen=True, slots=True)
class ArmAggregate:
    """Counts and latency percentiles of one A/B arm, as /ab-stats reports them."""

    total: int = 0
    flagged: int = 0
    errors: int = 0
    labelled: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


class LabelOutcome(StrEnum):
    """What `label()` did; compares equal to the plain strings."""

    CREATED = "created"  # stored
    DUPLICATE = "duplicate"  # same label already stored: nothing changed
    CONFLICT = "conflict"  # a different label already stored: nothing changed (HTTP 409)
    UNKNOWN = "unknown"  # no such decision (HTTP 404)


@runtime_checkable
class Ledger(Protocol):
    """What the service needs from a ledger; SQLiteLedger is the one implementation."""

    def record(self, decisions: Iterable[Decision] | Decision) -> None:
        """Enqueue decisions for the background writer (non-blocking)."""
        ...

    def record_error(self, arm: Arm, kind: str) -> None:
        """Count one scoring error of `arm` (enqueued, non-blocking)."""
        ...

    def flush(self) -> None:
        """Write everything this process has enqueued so far, synchronously."""
        ...

    def close(self) -> None:
        """Flush, stop the writer and release the database."""
        ...

    def label(self, request_id: str, is_fraud: bool) -> LabelOutcome:
        """Attach the ground-truth label to a decision, atomically and idempotently."""
        ...

    def lookup(self, request_id: str) -> Decision | None:
        """The stored decision with this id, or None."""
        ...

    def arm_counts(self) -> dict[str, ArmAggregate]:
        """Per-arm totals, confusion counts, errors and recent latency percentiles.

        Includes everything this process enqueued before the call.
        """
        ...

    def get_state(self, key: str) -> dict[str, Any] | None:
        """The persisted experiment-state value under `key`, or None."""
        ...

    def set_state(self, key: str, value: dict[str, Any]) -> None:
        """Persist an experiment-state value (durably) under `key`."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY,
    request_id  TEXT    NOT NULL UNIQUE,
    ts          REAL    NOT NULL,
    user_id     TEXT    NOT NULL,
    arm         TEXT    NOT NULL,
    model_tag   TEXT    NOT NULL,
    probability REAL    NOT NULL,
    is_fraud    INTEGER NOT NULL,
    latency_ms  REAL    NOT NULL,
    source      TEXT    NOT NULL
);
-- Covering index for "latency of the most recent N single /predict decisions of an arm"
-- (a bulk call's latency belongs to the whole call, not to each of its rows).
CREATE INDEX IF NOT EXISTS decisions_arm_source_ts ON decisions (arm, source, ts, latency_ms);

CREATE TABLE IF NOT EXISTS labels (
    request_id TEXT    PRIMARY KEY,
    is_fraud   INTEGER NOT NULL,
    ts         REAL    NOT NULL
);

CREATE TABLE IF NOT EXISTS error_counts (
    arm  TEXT    NOT NULL,
    kind TEXT    NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY (arm, kind)
);

-- Per-arm counters, kept exact in the inserting transaction (total/flagged by the writer from
-- the rows actually inserted, label counts by trigger), so /ab-stats reads two rows instead of
-- scanning a million.
CREATE TABLE IF NOT EXISTS arm_stats (
    arm      TEXT    PRIMARY KEY,
    total    INTEGER NOT NULL DEFAULT 0,
    flagged  INTEGER NOT NULL DEFAULT 0,
    labelled INTEGER NOT NULL DEFAULT 0,
    tp       INTEGER NOT NULL DEFAULT 0,
    fp       INTEGER NOT NULL DEFAULT 0,
    fn       INTEGER NOT NULL DEFAULT 0,
    tn       INTEGER NOT NULL DEFAULT 0
);

CREATE TRIGGER IF NOT EXISTS labels_count AFTER INSERT ON labels
BEGIN
    UPDATE arm_stats SET
        labelled = labelled + 1,
        tp = tp + (d.is_fraud = 1 AND NEW.is_fraud = 1),
        fp = fp + (d.is_fraud = 1 AND NEW.is_fraud = 0),
        fn = fn + (d.is_fraud = 0 AND NEW.is_fraud = 1),
        tn = tn + (d.is_fraud = 0 AND NEW.is_fraud = 0)
    FROM (SELECT arm, is_fraud FROM decisions WHERE request_id = NEW.request_id) AS d
    WHERE arm_stats.arm = d.arm;
END;

CREATE TABLE IF NOT EXISTS state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

_INSERT_DECISION = (
    "INSERT INTO decisions (request_id, ts, user_id, arm, model_tag, probability, is_fraud,"
    " latency_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_UPSERT_ERRORS = (
    "INSERT INTO error_counts (arm, kind, n) VALUES (?, ?, ?)"
    " ON CONFLICT (arm, kind) DO UPDATE SET n = n + excluded.n"
)
_DECISION_COLUMNS = (
    "request_id, ts, user_id, arm, model_tag, probability, is_fraud, latency_ms, source"
)

_Row = tuple[str, float, str, str, str, float, int, float, str]


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) of sorted values, linear interpolation as numpy's default."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _to_row(d: Decision) -> _Row:
    if d.arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {d.arm!r}")
    if d.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {d.source!r}")
    return (
        str(d.request_id), float(d.ts), str(d.user_id), d.arm, str(d.model_tag),
        float(d.probability), 1 if d.is_fraud else 0, float(d.latency_ms), d.source,
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
        self._pending_errors: deque[tuple[str, str]] = deque()
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
                for statement in _split_sql(_SCHEMA):
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO arm_stats (arm) VALUES (?) ON CONFLICT (arm) DO NOTHING",
                    [(arm,) for arm in ARMS],
                )
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

    def record_error(self, arm: Arm, kind: str) -> None:
        """Count one scoring error of `arm` (e.g. kind="exception"); enqueued like decisions."""
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
        with self._accept_lock:
            if self._closed:
                raise RuntimeError(self._closed_reason)
            self._pending_errors.append((arm, str(kind)))

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

    def _write(self, rows: list[_Row], errors: list[tuple[str, str]]) -> None:
        conn = self._wconn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                groups: dict[tuple[str, int], list[_Row]] = {}
                for row in rows:
                    groups.setdefault((row[3], row[6]), []).append(row)
                added: Counter[tuple[str, int]] = Counter()
                for key, group in groups.items():
                    added[key] += self._insert(group)
                conn.executemany(
                    "UPDATE arm_stats SET total = total + ?, flagged = flagged + ? WHERE arm = ?",
                    [(added[(arm, 0)] + added[(arm, 1)], added[(arm, 1)], arm) for arm in ARMS],
                )
            if errors:
                counts = Counter(errors)
                conn.executemany(
                    _UPSERT_ERRORS, [(arm, kind, n) for (arm, kind), n in counts.items()]
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _insert(self, rows: list[_Row]) -> int:
        """Insert decisions (duplicate request_ids ignored); return how many were new."""
        conn = self._wconn
        conn.execute("SAVEPOINT batch")
        try:
            inserted = conn.executemany(_INSERT_DECISION, rows).rowcount
        except sqlite3.OperationalError:
            raise
        except Exception:  # a poison row (e.g. unencodable text): isolate and drop it
            conn.execute("ROLLBACK TO batch")
            inserted = 0
            for row in rows:
                try:
                    inserted += conn.execute(_INSERT_DECISION, row).rowcount
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
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if row is None:
            return None
        rid, ts, user_id, arm, tag, prob, flagged, latency, source = row
        return Decision(rid, ts, user_id, arm, tag, prob, bool(flagged), latency, source)

    def arm_counts(self) -> dict[str, ArmAggregate]:
        """Per-arm aggregates over all workers' committed rows (this process's queue flushed)."""
        self.flush()
        with self._rlock:
            conn = self._rconn
            conn.execute("BEGIN")  # one snapshot for all the reads
            try:
                stats = {
                    row[0]: row[1:]
                    for row in conn.execute(
                        "SELECT arm, total, flagged, labelled, tp, fp, fn, tn FROM arm_stats"
                    )
                }
                errors = dict(
                    conn.execute("SELECT arm, SUM(n) FROM error_counts GROUP BY arm").fetchall()
                )
                latencies = {
                    arm: sorted(
                        r[0]
                        for r in conn.execute(
                            "SELECT latency_ms FROM decisions WHERE arm = ?"
                            " AND source = 'predict' ORDER BY ts DESC LIMIT ?",
                            (arm, self.latency_window),
                        )
                    )
                    for arm in ARMS
                }
            finally:
                conn.execute("COMMIT")
        out: dict[str, ArmAggregate] = {}
        for arm in ARMS:
            total, flagged, labelled, tp, fp, fn, tn = stats.get(arm, (0,) * 7)
            out[arm] = ArmAggregate(
                total=total, flagged=flagged, errors=int(errors.get(arm) or 0),
                labelled=labelled, tp=tp, fp=fp, fn=fn, tn=tn,
                latency_p50_ms=_percentile(latencies[arm], 50),
                latency_p95_ms=_percentile(latencies[arm], 95),
            )
        return out

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
    ledger._closed = True
    ledger._closed_reason = (
        "this Ledger was opened before fork(); open a new one in each worker process"
    )
    atexit.unregister(ledger.close)

"""The decision/label ledger's writer: group commit of decisions from a process's requests.

`record()` queues a request's decisions and returns a future; a writer thread commits
everything queued since its last commit in one transaction (group commit) and completes the
futures, so a caller answers only once its decisions are stored. Every process opens its own
Ledger on the shared store (fraud/store/backend.py: a SQLite file or PostgreSQL). The
per-user aggregates /ab-stats reads are kept by triggers in the writing transactions
(fraud/store/sql.py), so they are exact across workers and replicas; labels
(fraud/store/labels.py), experiments (fraud/store/experiments.py), shadow pairs
(fraud/store/paired.py), label and period rows (fraud/store/evidence.py), the exploration
budget (fraud/store/exploration.py) and the report's looks (fraud/store/history.py) are mixins.
No BentoML dependency: the service imports this, not the other way round.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from fraud.schema import ARMS
from fraud.store import sql
from fraud.store.backend import Backend, open_backend
from fraud.store.evidence import EvidenceStore
from fraud.store.experiments import ExperimentStore
from fraud.store.exploration import ExplorationStore
from fraud.store.history import HistoryStore
from fraud.store.labels import LabelStore
from fraud.store.paired import PairedStore
from fraud.store.records import (
    Decision,
    DecisionRejected,
    LedgerBusy,
    LedgerUnavailable,
    ScoringError,
)
from fraud.store.rows import Row, commit, to_row

log = logging.getLogger(__name__)


class Ledger(LabelStore, ExperimentStore, PairedStore, HistoryStore, EvidenceStore,
             ExplorationStore):
    """The ledger on a store (a path or URL, or a Backend); open one per process."""

    def __init__(
        self,
        store: str | os.PathLike[str] | Backend,
        *,
        flush_interval: float = 0.05,
        max_batch: int = 1000,
        latency_window: int = 10_000,
        label_wait: float | None = None,
        busy_timeout: float = 5.0,
        max_pending: int = 20_000,
        migrate: bool = True,
        lock_wait: float = 20.0,
    ) -> None:
        """Open (creating if needed) the ledger in `store` and start its writer thread.

        `label_wait` bounds how long `label()` retries an unknown id (default 3 x interval);
        `max_pending` the rows waiting for their commit (`record` refuses beyond it). A commit
        carries at most `max_batch` rows (a request is never split: a larger one goes alone).
        `lock_wait` bounds a write's wait for the store's write lock held by other writers:
        past it that transaction's callers get LedgerBusy; `problem` (ledger down) is for real
        faults only. The schema must be one this release runs on (fraud/store/version.py); a
        SQLite file is migrated on open unless `migrate` is False, PostgreSQL never.
        """
        if flush_interval <= 0 or max_batch < 1 or latency_window < 1:
            raise ValueError("flush_interval, max_batch and latency_window must be positive")
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.latency_window = latency_window
        self.label_wait = 3 * flush_interval if label_wait is None else label_wait
        self.busy_timeout = busy_timeout

        self.max_pending = max_pending
        # Each record() call is one group: its rows and the future its caller waits on.
        self._pending: deque[tuple[list[Row], Future[None]]] = deque()
        self._pending_rows = 0
        self._pending_errors: deque[ScoringError] = deque()
        self.problem: str | None = None  # why the last write failed; None once one succeeds
        self.write_failures = 0  # failed commits of a faulty store (they set `problem`)
        self.lock_timeouts = 0  # commits that waited past `lock_wait` (LedgerBusy)
        self.commits = 0  # transactions that stored decisions (one per group commit)
        self._accept_lock = threading.Lock()  # orders record() against close()
        self._closed = False
        self._closed_reason = "ledger is closed"
        self._wake = threading.Event()
        self._stop = threading.Event()

        self.backend = store if hasattr(store, "write") else open_backend(
            store, busy_timeout=busy_timeout, lock_wait=lock_wait,  # type: ignore[arg-type]
            migrate=migrate)
        self.where = self.backend.where
        self.errors = self.backend.errors
        self._wlock = threading.Lock()  # one flush at a time in this process

        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _disown_after_fork(ref))

    # -- writes -----------------------------------------------------------------------------

    def record(self, decisions: Iterable[Decision] | Decision) -> Future[None]:
        """Queue decisions for the writer thread; the future completes once they are committed
        (group commit: everything queued since the last commit, in one transaction) or fails
        with LedgerUnavailable. Callers answer only after it completes."""
        if isinstance(decisions, Decision):
            decisions = (decisions,)
        return self.record_many([decisions])[0]

    def record_many(self, requests: Sequence[Iterable[Decision]]) -> list[Future[None]]:
        """`record` for several requests at once (a coalesced batch): queued together, so the
        writer commits them in one transaction, each request stored whole or refused alone
        (DecisionRejected). One future per request, in order."""
        groups = [[to_row(d) for d in decisions] for decisions in requests]
        futures: list[Future[None]] = [Future() for _ in groups]
        n = sum(len(rows) for rows in groups)
        with self._accept_lock:
            if self._closed:
                raise RuntimeError(self._closed_reason)
            if self._pending_rows + n > self.max_pending:
                raise LedgerUnavailable(f"{self._pending_rows} decisions already wait for "
                                        f"their commit to {self.where}"
                                        + (f" ({self.problem})" if self.problem else ""))
            self._pending.extend(zip(groups, futures, strict=True))
            self._pending_rows += n
        self._wake.set()
        return futures

    def record_errors(self, errors: Iterable[ScoringError]) -> None:
        """Count rows whose scoring failed, per arm and user (enqueued like decisions)."""
        checked = []
        for e in errors:
            if e.arm not in ARMS:
                raise ValueError(f"arm must be one of {ARMS}, got {e.arm!r}")
            user = str(e.user_id)
            user.encode()  # refuse what the store could not take, here rather than in the writer
            checked.append(ScoringError(int(e.experiment_id), int(e.period), e.arm, user,
                                        e.undecided))
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
            with self.backend.write(durable=False) as conn:
                conn.execute(sql.HEARTBEAT, (f"heartbeat:{os.getpid()}", time.time()))
        except LedgerBusy:  # other writers hold the lock: says nothing about a fault
            return self.problem is None
        except self.errors as exc:
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
            self.backend.close()

    def __enter__(self) -> Ledger:
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
            except LedgerBusy:  # reported to its callers; the next batch may go at once
                continue
            except Exception:  # already reported to the waiting callers and in `problem`
                self._stop.wait(min(1.0, 10 * self.flush_interval))

    def _drain_locked(self) -> None:
        # Only what is waiting now: a steady stream of records must not starve the caller.
        todo = len(self._pending)
        errors = self._take(self._pending_errors, len(self._pending_errors))
        while True:
            groups: list[tuple[list[Row], Future[None]]] = []
            n = 0
            while todo and (not groups or n + len(self._pending[0][0]) <= self.max_batch):
                groups.append(self._pending.popleft())
                n += len(groups[-1][0])
                todo -= 1
            if not groups and not errors:
                return
            try:
                rejected = self._write([rows for rows, _ in groups], errors)
            except LedgerBusy as exc:  # a lock wait past its deadline: these callers only
                self.lock_timeouts += 1
                log.warning("ledger: %s", exc)
                self._fail(exc, groups, errors)
                raise
            except Exception as exc:
                self._failed(exc, groups, errors)
                raise LedgerUnavailable(f"cannot write to {self.where}: {self.problem}") from exc
            except BaseException as exc:
                self._failed(exc, groups, errors)
                raise
            finally:
                with self._accept_lock:
                    self._pending_rows -= n
            self.commits += 1 if groups else 0
            if self.problem:
                log.warning("ledger: writing to %s again", self.where)
            self.problem = None
            for i, (_, done) in enumerate(groups):
                if i in rejected:
                    done.set_exception(DecisionRejected(
                        f"the store refused this request's decisions: {rejected[i]}"))
                else:
                    done.set_result(None)
            errors = []

    def _failed(self, exc: BaseException, groups: list[tuple[list[Row], Future[None]]],
                errors: list[ScoringError]) -> None:
        """A failed commit of a faulty store: its callers get the cause (their decisions are
        not kept for later), `problem` says it (the service refuses traffic until a probe)."""
        self.write_failures += 1
        self.problem = f"{type(exc).__name__}: {exc}"
        log.error("ledger: cannot write to %s: %s", self.where, self.problem)
        self._fail(LedgerUnavailable(f"cannot write to {self.where}: {self.problem}"), groups,
                   errors)

    def _fail(self, failure: Exception, groups: list[tuple[list[Row], Future[None]]],
              errors: list[ScoringError]) -> None:  # the callers fail; error counts are kept
        for _, done in groups:
            done.set_exception(failure)
        keep = errors[-self.max_pending:]
        self._pending_errors.extendleft(reversed(keep))

    def _write(self, groups: list[list[Row]],
               errors: list[ScoringError]) -> dict[int, BaseException]:
        """One group commit (fraud/store/rows.py); the groups the store refused."""
        return commit(self.backend, groups, errors)

    @staticmethod
    def _take(queue: deque[Any], n: int) -> list[Any]:  # only the lock holder pops
        return [queue.popleft() for _ in range(n)]

def _disown_after_fork(ref: weakref.ref[Ledger]) -> None:
    """In a forked child, the parent's ledger has no writer thread: refuse further records."""
    ledger = ref()
    if ledger is None:
        return
    ledger._accept_lock = threading.Lock()
    ledger._wlock = threading.Lock()
    ledger.backend.after_fork()
    ledger._pending = deque()  # the parent writes its own queue, never the child
    ledger._pending_rows = 0
    ledger._pending_errors = deque()
    ledger._closed = True
    ledger._closed_reason = "this Ledger was opened before fork(); open one in each process"
    atexit.unregister(ledger.close)

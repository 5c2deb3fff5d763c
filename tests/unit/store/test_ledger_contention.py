"""Writers of several processes on one store: a lock wait is not a fault. Two processes
hammering one SQLite file with bulk batches all commit; a lock held past `lock_wait` fails that
one batch (LedgerBusy), never the ledger (`problem` stays None)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from contention_support import _bulk_hammer, _resender
from ledger_support import EXP, arm_totals, counts, dec, err, raw_count, run_workers

from fraud.store.records import LedgerBusy
from fraud.store.writer import Ledger


def test_two_processes_hammering_one_sqlite_file_with_bulk_batches_never_fail(
        sqlite_db: Path) -> None:
    clients, batches, rows = 4, 6, 500
    out = run_workers(2, lambda w, start, results: (
        _bulk_hammer, (str(sqlite_db), w, clients, batches, rows, start, results)))
    for worker, (first, failed, write_failures, lock_timeouts, problems) in out.items():
        assert (failed, write_failures, lock_timeouts, problems) == (0, 0, 0, []), (worker, first)
    total = 2 * clients * batches * rows
    assert raw_count(sqlite_db) == total
    with Ledger(sqlite_db) as led:
        running, scanned = arm_totals(led.aggregates(EXP)), led.aggregates(EXP, scan=True)
        assert running["model_a"].decisions == total == arm_totals(scanned)["model_a"].decisions
        assert running["model_a"].flagged == 2 * clients * batches * len(range(0, rows, 7))
        assert running["model_a"].users == 97


@contextmanager
def holding_the_write_lock(store: str) -> Iterator[None]:
    """Another process's long write: the store's write lock held from a plain connection."""
    if store.startswith("postgresql://"):
        import psycopg

        from fraud.store.postgres import WRITE_LOCK

        with psycopg.connect(store, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            yield
        return
    conn = sqlite3.connect(store, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_a_lock_held_past_lock_wait_fails_that_batch_only(db: str) -> None:
    with Ledger(db, lock_wait=0.5, busy_timeout=0.1) as led:
        led.record(dec("before")).result()
        with holding_the_write_lock(db):
            led.record_errors([err("u-kept")])
            began = time.monotonic()
            with pytest.raises(LedgerBusy, match="write lock"):
                led.record(dec("refused")).result(timeout=30)
            assert time.monotonic() - began < 10
            assert led.probe()  # a busy lock is no fault: the ledger is not down
            assert led.problem is None and led.write_failures == 0 and led.lock_timeouts == 1
        led.record(dec("after")).result(timeout=10)
        assert led.lookup("refused") is None and led.lookup("after") is not None
        totals = arm_totals(led.aggregates(EXP))["model_a"]
        assert (totals.decisions, totals.errors) == (2, 1)  # the error count was kept


def test_workers_recording_the_same_ids_at_once_count_each_once(db: str) -> None:
    """Duplicates across processes take the trigger's path, whose user rows are not sorted:
    on PostgreSQL, where commits run side by side, a deadlock it may cause rolls the commit
    back whole and it runs again; the counts stay exact."""
    ids = [f"dup-{i}" for i in range(600)]
    out = run_workers(3, lambda w, start, results: (
        _resender, (db, w, ids, start, results)))
    assert all(failures == 0 and busy == 0 for _, failures, busy in out.values()), out
    assert raw_count(db) == len(ids)
    with Ledger(db) as led:
        running, scanned = led.aggregates(EXP), led.aggregates(EXP, scan=True)
        a = arm_totals(running)["model_a"]
        assert (a.users, a.decisions, a.flagged) == (13, 600, 200)
        assert counts(running[0]["model_a"]) == counts(scanned[0]["model_a"])

"""The decision/label ledger, without a server: batching, labels, stats, state, processes."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud.ledger import ArmAggregate, Decision, LabelOutcome, Ledger, SQLiteLedger

SPAWN = mp.get_context("spawn")


def dec(rid: str, arm: str = "model_a", *, flagged: bool = False, latency: float = 5.0,
        ts: float | None = None, source: str = "predict") -> Decision:
    """A decision with defaults for everything a test does not care about."""
    return Decision(request_id=rid, ts=time.time() if ts is None else ts, user_id=f"u-{rid}",
                    arm=arm, model_tag=f"fraud_{arm}:v1", probability=0.9 if flagged else 0.1,
                    is_fraud=flagged, latency_ms=latency, source=source)  # type: ignore[arg-type]


def raw_count(path: Path, table: str = "decisions") -> int:
    """Rows in a table, read with a plain sqlite3 connection (no ledger involved)."""
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "ledger.db"


@pytest.fixture
def ledger(db: Path):
    with SQLiteLedger(db) as led:
        yield led


# -- spawn targets (module level so the spawned interpreter can import them) -----------------------


def _record_later(path: str, rid: str, ready: Any, go: Any, delay: float) -> None:
    with SQLiteLedger(path, flush_interval=0.05) as led:
        ready.set()
        go.wait(30)
        time.sleep(delay)
        led.record(dec(rid, "model_b", flagged=True))
        time.sleep(0.5)  # let the writer thread (not close()) write it


def _concurrent_writer(path: str, worker: int, n: int, shared: list[str], start: Any,
                       results: Any) -> None:
    led = SQLiteLedger(path, flush_interval=0.01, max_batch=50)
    start.wait(30)  # a barrier: all workers write at the same time
    outcomes = {}
    for i in range(n):
        arm = "model_a" if i % 3 else "model_b"
        led.record(dec(f"w{worker}-{i}", arm, flagged=i % 5 == 0, latency=float(i % 40)))
        if i % 100 == 0:
            led.record_error(arm, "timeout")
            time.sleep(0.002)  # pace a little so the workers' batches overlap in time
        if i % 200 == 0 and shared:  # race the other workers to label the shared decisions
            rid = shared.pop(0)
            outcomes[rid] = str(led.label(rid, worker % 2 == 0))
    for rid in shared:
        outcomes[rid] = str(led.label(rid, worker % 2 == 0))
    led.close()
    results.put((worker, outcomes))


# -- construction ----------------------------------------------------------------------------------


def test_opens_wal_database_creating_parent_dirs(db: Path) -> None:
    assert not db.parent.exists()
    with SQLiteLedger(db) as led:
        assert isinstance(led, Ledger)
        assert led.label_wait == pytest.approx(0.15)
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_empty_ledger_reports_both_arms_zeroed(ledger: SQLiteLedger) -> None:
    assert ledger.arm_counts() == {"model_a": ArmAggregate(), "model_b": ArmAggregate()}


# -- record / flush / stats ------------------------------------------------------------------------


def test_record_flush_and_arm_counts_exact(ledger: SQLiteLedger) -> None:
    ledger.record([
        dec("a1", flagged=True, latency=10.0),
        dec("a2", flagged=True, latency=20.0),
        dec("a3", flagged=False, latency=30.0),
        dec("a4", flagged=False, latency=40.0, source="batch"),
        dec("b1", "model_b", flagged=True, latency=7.0),
        dec("b2", "model_b", flagged=False, latency=9.0),
    ])
    ledger.record(dec("a5", flagged=False, latency=50.0))  # a single Decision is accepted too
    ledger.record_error("model_b", "exception")
    ledger.record_error("model_b", "timeout")
    ledger.record_error("model_a", "exception")
    ledger.flush()
    assert ledger.pending() == 0
    for rid, truth in [("a1", True), ("a2", False), ("a3", True), ("a4", False),
                       ("b1", True), ("b2", False)]:
        assert ledger.label(rid, truth) == "created"

    stats = ledger.arm_counts()
    assert stats["model_a"] == ArmAggregate(total=5, flagged=2, errors=1, labelled=4,
                                            tp=1, fp=1, fn=1, tn=1,
                                            # percentiles over single /predict rows only:
                                            # 10, 20, 30, 50 (a4 came from a bulk call)
                                            latency_p50_ms=25.0, latency_p95_ms=47.0)
    assert stats["model_b"] == ArmAggregate(total=2, flagged=1, errors=2, labelled=2,
                                            tp=1, fp=0, fn=0, tn=1,
                                            latency_p50_ms=8.0, latency_p95_ms=pytest.approx(8.9))


def test_duplicate_request_id_is_stored_and_counted_once(ledger: SQLiteLedger) -> None:
    first = dec("same", flagged=True)
    ledger.record([first, dec("same", "model_b", flagged=False)])
    ledger.flush()
    assert ledger.lookup("same") == first
    stats = ledger.arm_counts()
    assert (stats["model_a"].total, stats["model_a"].flagged, stats["model_b"].total) == (1, 1, 0)


def test_lookup_roundtrips_every_field(ledger: SQLiteLedger) -> None:
    d = Decision("r-1", 1_700_000_000.123456, "user_9", "model_b", "fraud_b:abc", 0.731,
                 True, 3.25, "batch")
    ledger.record([d])
    assert ledger.lookup("r-1") == d  # lookup flushes this process's queue first
    assert ledger.lookup("nope") is None


def test_record_validates_and_refuses_after_close(db: Path) -> None:
    led = SQLiteLedger(db)
    with pytest.raises(ValueError, match="arm"):
        led.record([dec("x", "model_c")])
    with pytest.raises(ValueError, match="source"):
        led.record([dec("x", source="stream")])
    with pytest.raises(ValueError, match="arm"):
        led.record_error("model_z", "exception")  # type: ignore[arg-type]
    led.close()
    led.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        led.record([dec("y")])


def test_record_only_enqueues_until_flush(db: Path) -> None:
    with SQLiteLedger(db, flush_interval=60, max_batch=10_000) as writer, \
            SQLiteLedger(db) as reader:
        writer.record([dec(f"r{i}") for i in range(5)])
        assert writer.pending() == 5
        assert reader.arm_counts()["model_a"].total == 0
        writer.flush()
        assert writer.pending() == 0
        assert reader.arm_counts()["model_a"].total == 5


def test_writer_thread_flushes_on_interval_and_on_max_batch(db: Path) -> None:
    def seen_within(reader: SQLiteLedger, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reader.arm_counts()["model_a"].total == n:
                return True
            time.sleep(0.01)
        return False

    with SQLiteLedger(db) as reader:
        with SQLiteLedger(db, flush_interval=0.05) as periodic:
            periodic.record([dec("p1")])
            assert seen_within(reader, 1, 2.0)
        with SQLiteLedger(db, flush_interval=60, max_batch=20) as full:
            full.record([dec(f"m{i}") for i in range(19)])
            time.sleep(0.1)
            assert reader.arm_counts()["model_a"].total == 1  # below max_batch: still queued
            full.record([dec("m19")])  # the max_batch-th row wakes the writer
            assert seen_within(reader, 21, 2.0)


def test_close_loses_nothing(db: Path) -> None:
    led = SQLiteLedger(db)
    for i in range(10_000):
        led.record(dec(f"c{i}", "model_a" if i % 2 else "model_b", flagged=i % 7 == 0))
    led.close()
    assert raw_count(db) == 10_000
    with SQLiteLedger(db) as again:
        stats = again.arm_counts()
    assert stats["model_a"].total + stats["model_b"].total == 10_000
    assert stats["model_a"].flagged + stats["model_b"].flagged == len(range(0, 10_000, 7))


# -- latency percentiles ---------------------------------------------------------------------------


def test_latency_percentiles_on_known_values(db: Path) -> None:
    values = [float(v) for v in range(1, 101)]
    with SQLiteLedger(db) as led:
        led.record([dec(f"l{v:g}", latency=v, ts=1000.0 + v) for v in reversed(values)])
        a = led.arm_counts()["model_a"]
        assert a.latency_p50_ms == pytest.approx(50.5)
        assert a.latency_p95_ms == pytest.approx(95.05)
        assert a.latency_p50_ms == pytest.approx(np.percentile(values, 50))
        assert a.latency_p95_ms == pytest.approx(np.percentile(values, 95))
        b = led.arm_counts()["model_b"]
        assert (b.latency_p50_ms, b.latency_p95_ms) == (None, None)
    # Only the most recent `latency_window` decisions (by ts) of the arm count.
    with SQLiteLedger(db, latency_window=10) as led:
        a = led.arm_counts()["model_a"]
        assert a.total == 100
        assert a.latency_p50_ms == pytest.approx(95.5)  # 91..100
        assert a.latency_p95_ms == pytest.approx(99.55)


# -- labels ----------------------------------------------------------------------------------------


def test_label_outcomes(ledger: SQLiteLedger) -> None:
    ledger.record([dec("r1", flagged=True), dec("r2", "model_b")])
    assert ledger.label("r1", True) == LabelOutcome.CREATED
    assert ledger.label("r1", True) == LabelOutcome.DUPLICATE
    assert ledger.label("r1", False) == LabelOutcome.CONFLICT
    assert ledger.get_label("r1") is True  # the conflicting label changed nothing
    assert ledger.label("r2", False) == "created"  # StrEnum: equal to the plain string
    assert str(ledger.label("r2", False)) == "duplicate"
    assert ledger.label("missing", True, wait=0) == LabelOutcome.UNKNOWN
    assert ledger.get_label("missing") is None
    stats = ledger.arm_counts()
    assert (stats["model_a"].labelled, stats["model_a"].tp) == (1, 1)
    assert (stats["model_b"].labelled, stats["model_b"].tn) == (1, 1)


def test_unknown_label_waits_only_a_bounded_time(db: Path) -> None:
    with SQLiteLedger(db, flush_interval=0.05, label_wait=0.2) as led:
        started = time.monotonic()
        assert led.label("never-recorded", True) == LabelOutcome.UNKNOWN
        elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.0


def test_unknown_label_retry_sees_decision_from_another_process(db: Path) -> None:
    ready, go = SPAWN.Event(), SPAWN.Event()
    proc = SPAWN.Process(target=_record_later, args=(str(db), "late-1", ready, go, 0.1))
    proc.start()
    try:
        with SQLiteLedger(db, flush_interval=0.05, label_wait=5.0) as led:
            assert ready.wait(30), "child did not start"
            assert led.label("late-1", True, wait=0) == LabelOutcome.UNKNOWN
            go.set()
            started = time.monotonic()
            assert led.label("late-1", True) == LabelOutcome.CREATED
            assert time.monotonic() - started < 2.0
            assert led.lookup("late-1") is not None
    finally:
        proc.join(30)
    assert proc.exitcode == 0


# -- persistence and state -------------------------------------------------------------------------


def test_data_survives_reopen(db: Path) -> None:
    with SQLiteLedger(db) as led:
        led.record([dec("k1", flagged=True, latency=4.0), dec("k2", "model_b", latency=6.0)])
        led.record_error("model_b", "exception")
        assert led.label("k1", False) == "created"
        before = led.arm_counts()
    with SQLiteLedger(db) as led:
        assert led.arm_counts() == before
        assert before["model_a"] == ArmAggregate(total=1, flagged=1, labelled=1, fp=1,
                                                 latency_p50_ms=4.0, latency_p95_ms=4.0)
        assert before["model_b"].errors == 1
        assert led.lookup("k2") == Decision("k2", led.lookup("k2").ts, "u-k2", "model_b",
                                            "fraud_model_b:v1", 0.1, False, 6.0, "predict")
        assert led.label("k1", False) == "duplicate"
        assert led.label("k1", True) == "conflict"


def test_state_set_get_across_reopen_and_processes(db: Path) -> None:
    rollback = {"rolled_back": True, "reason": "error rate 7% > 5%", "at": "2026-01-01T00:00Z"}
    with SQLiteLedger(db) as led, SQLiteLedger(db) as other:
        assert led.get_state("experiment") is None
        led.set_state("experiment", {"share": 0.1})
        led.set_state("experiment", rollback)  # overwrite
        assert other.get_state("experiment") == rollback  # visible to another worker at once
    with SQLiteLedger(db) as led:
        assert led.get_state("experiment") == rollback
        assert led.get_state("other") is None
    with sqlite3.connect(db) as conn:
        updated_at = conn.execute("SELECT updated_at FROM state").fetchone()[0]
    assert abs(updated_at - time.time()) < 60


# -- several worker processes ----------------------------------------------------------------------


def test_concurrent_processes_keep_exact_totals(db: Path) -> None:
    workers, n = 3, 1500
    shared = [f"shared-{i}" for i in range(12)]
    with SQLiteLedger(db) as led:  # decisions every worker will race to label
        led.record([dec(rid, "model_b", flagged=i % 2 == 0) for i, rid in enumerate(shared)])

    start, results = SPAWN.Barrier(workers, timeout=30), SPAWN.Queue()
    procs = [SPAWN.Process(target=_concurrent_writer,
                           args=(str(db), w, n, list(shared), start, results))
             for w in range(workers)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    assert raw_count(db) == workers * n + len(shared)
    with SQLiteLedger(db) as led:
        stats = led.arm_counts()
        per_worker_b = len(range(0, n, 3))
        flagged_a = sum(1 for i in range(n) if i % 3 and i % 5 == 0)
        flagged_b = sum(1 for i in range(0, n, 3) if i % 5 == 0)
        errors_b = sum(1 for i in range(0, n, 100) if i % 3 == 0)
        a, b = stats["model_a"], stats["model_b"]
        assert a.total == workers * (n - per_worker_b)
        assert b.total == workers * per_worker_b + len(shared)
        assert a.flagged == workers * flagged_a
        assert b.flagged == workers * flagged_b + len(shared[::2])
        assert a.errors == workers * (len(range(0, n, 100)) - errors_b)
        assert b.errors == workers * errors_b
        # Each shared decision: exactly one worker created its label; the others saw
        # duplicate (same value) or conflict (opposite value) against what is stored.
        assert (a.labelled, b.labelled) == (0, len(shared))
        for rid in shared:
            stored = led.get_label(rid)
            per = {w: outcomes[w][rid] for w in range(workers)}
            assert Counter(per.values())["created"] == 1, per
            for w, outcome in per.items():
                if outcome != "created":
                    assert outcome == ("duplicate" if (w % 2 == 0) == stored else "conflict")
        # The counters agree with a full recount in SQL.
        with sqlite3.connect(db) as conn:
            recount = dict(conn.execute(
                "SELECT arm, COUNT(*) FROM decisions GROUP BY arm").fetchall())
            writers = [r[0].split("-")[0] for r in conn.execute(
                "SELECT request_id FROM decisions WHERE request_id LIKE 'w%' ORDER BY id")]
        assert recount == {"model_a": a.total, "model_b": b.total}
        # The workers really wrote concurrently: their batches interleave in the file.
        switches = sum(1 for x, y in pairwise(writers) if x != y)
        assert switches >= workers, switches  # run one after the other: workers - 1

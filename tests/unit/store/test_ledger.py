"""The ledger's writer, without a server: construction, record and commit (group
commit), errors, persistence and fork safety."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ledger_support import (
    EXP,
    IDENTITY,
    arm_totals,
    counts,
    dec,
    err,
    raw,
    raw_count,
)

from fraud.stats.ratio import RatioMoments
from fraud.store.records import Decision, DecisionRejected
from fraud.store.writer import Ledger

# -- construction ----------------------------------------------------------------------------------


def test_opens_wal_database_creating_parent_dirs(sqlite_db: Path) -> None:
    db = sqlite_db
    assert not db.parent.exists()
    with Ledger(db) as led:
        assert led.label_wait == pytest.approx(0.15)
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rejects_non_positive_settings(db: str) -> None:
    for kwargs in ({"flush_interval": 0}, {"max_batch": 0}, {"latency_window": 0}):
        with pytest.raises(ValueError, match="positive"):
            Ledger(db, **kwargs)


def test_empty_ledger_has_no_aggregates_latencies_or_experiments(ledger: Ledger) -> None:
    assert ledger.aggregates(EXP) == {}
    assert ledger.latencies(EXP, 0, 100) == {"model_a": [], "model_b": []}
    assert ledger.experiments() == []
    assert ledger.experiment(1) is None
    assert ledger.mature(time.time()) == 0


# -- record / flush / aggregates -------------------------------------------------------------------


def test_record_flush_and_aggregates_exact(ledger: Ledger) -> None:
    ledger.record([
        dec("a1", flagged=True, latency=10.0, ts=1.0),
        dec("a2", flagged=True, latency=20.0, ts=2.0),
        dec("a3", flagged=False, latency=30.0, ts=3.0),
        dec("a4", flagged=False, latency=40.0, ts=4.0, source="batch"),
        dec("b1", "model_b", flagged=True, latency=7.0, ts=1.5),
        dec("b2", "model_b", flagged=False, latency=9.0, ts=2.5),
    ])
    ledger.record(dec("a5", flagged=False, latency=50.0, ts=5.0))  # a single Decision too
    ledger.record_errors([err("u-b1", "model_b"), err("u-b2", "model_b"), err("u-a1")])
    ledger.flush()
    assert ledger.pending() == 0
    for rid, truth in [("a1", True), ("a2", False), ("a3", True), ("a4", False),
                       ("b1", True), ("b2", False)]:
        assert ledger.label(rid, truth) == "created"

    periods = ledger.aggregates(EXP)
    assert set(periods) == {0}
    a, b = periods[0]["model_a"], periods[0]["model_b"]
    #                 users dec flag err lab tp fp fn tn
    assert counts(a) == (5, 5, 2, 1, 4, 1, 1, 1, 1)
    assert counts(b) == (2, 2, 1, 2, 2, 1, 0, 0, 1)
    assert a.mature == 4
    # One decision per user here, so the moments are plain counts.
    assert a.flag == RatioMoments(5, 5, 2, 5, 2, 2)
    assert a.error == RatioMoments(5, 6, 1, 4 + 2 * 2, 1, 2)  # u-a1 attempted 2, 1 failed
    assert a.recall == RatioMoments(2, 2, 1, 2, 1, 1)  # a1 (caught), a3 (missed)
    assert a.precision == RatioMoments(2, 2, 1, 2, 1, 1)  # a1 (tp), a2 (fp)
    # Latencies: single /predict rows only (a4 came from a bulk call), newest first.
    assert ledger.latencies(EXP, 0, 100) == {"model_a": [50.0, 30.0, 20.0, 10.0],
                                             "model_b": [9.0, 7.0]}
    assert ledger.aggregates(EXP + 1) == {}


def test_duplicate_request_id_is_stored_and_counted_once(ledger: Ledger, db: str) -> None:
    first = dec("same", flagged=True, user="alice")
    ledger.record([first, dec("same", "model_b", flagged=False, user="bob")])
    ledger.flush()
    # Again in a later batch, in another experiment and period: still ignored.
    ledger.record([dec("same", "model_b", flagged=True, user="carol", experiment=2, period=1)])
    ledger.flush()
    assert ledger.lookup("same") == first
    assert raw_count(db) == 1
    assert ledger.label("same", True) == "created"
    assert ledger.label("same", True) == "duplicate"
    assert ledger.aggregates(2) == {}
    periods = ledger.aggregates(EXP)
    assert list(periods[0]) == ["model_a"]
    assert counts(periods[0]["model_a"]) == (1, 1, 1, 0, 1, 1, 0, 0, 0)
    assert raw(db, "SELECT user_id, decisions FROM user_stats") == [("alice", 1)]


def test_lookup_roundtrips_every_field(ledger: Ledger) -> None:
    d = Decision("r-1", 1_700_000_000.123456, "user_9", "model_b", "fraud_b:abc", 0.731,
                 True, 3.25, "batch", 7, 3)
    ledger.record([d])
    assert ledger.lookup("r-1") == d  # lookup flushes this process's queue first
    assert ledger.lookup("nope") is None
    legacy = Decision("r-2", 1.0, "u", "model_a", "t", 0.0, False, 0.0, "predict")
    assert (legacy.experiment_id, legacy.period) == (0, 0)  # the defaults
    ledger.record(legacy)
    assert ledger.lookup("r-2") == legacy


def test_record_validates_and_refuses_after_close(db: str) -> None:
    led = Ledger(db)
    with pytest.raises(ValueError, match="arm"):
        led.record([dec("x", "model_c")])
    with pytest.raises(ValueError, match="source"):
        led.record([dec("x", source="stream")])
    with pytest.raises(ValueError, match="arm"):
        led.record_errors([err("u", "model_z")])
    assert led.pending() == 0  # a rejected call enqueues nothing, not even its valid part
    led.close()
    led.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        led.record([dec("y")])
    with pytest.raises(RuntimeError, match="closed"):
        led.record_errors([err("u")])


def test_errors_are_counted_on_flush(db: str) -> None:
    with Ledger(db, flush_interval=60, max_batch=10_000) as writer, \
            Ledger(db) as reader:
        writer.record_errors([err("u-r0"), err("u-r0")])  # errors do not wake the writer
        assert writer.pending() == 2
        assert reader.aggregates(EXP) == {}
        writer.flush()
        assert writer.pending() == 0
        a = reader.aggregates(EXP)[0]["model_a"]
        assert (a.users, a.decisions, a.errors) == (1, 0, 2)


def test_record_completes_once_committed_and_visible_to_other_processes(db: str) -> None:
    with Ledger(db, flush_interval=60) as writer, Ledger(db) as reader:
        done = writer.record([dec(f"r{i}") for i in range(5)])
        done.result(timeout=5)  # the writer woke at once: no interval wait
        a = reader.aggregates(EXP)[0]["model_a"]
        assert (a.users, a.decisions) == (5, 5)
        assert writer.pending() == 0 and writer.problem is None


def test_concurrent_records_share_commits(db: str) -> None:
    """Group commit: while one transaction commits, new records queue and go in the next."""
    with Ledger(db) as led:
        commits = []
        original = led._write

        def counted(groups, errors):
            commits.append(sum(len(rows) for rows in groups))
            time.sleep(0.01)  # a slow disk: records pile up meanwhile
            return original(groups, errors)

        led._write = counted  # type: ignore[method-assign]
        futures: list = []
        threads = [threading.Thread(target=lambda i=i: futures.append(
            led.record([dec(f"c{i}")]))) for i in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for f in futures:
            f.result(timeout=10)
        assert sum(commits) == 200 and len(commits) < 100, commits
        assert raw_count(db) == 200


def test_flush_writes_in_batches_of_max_batch(db: str) -> None:
    with Ledger(db, flush_interval=60, max_batch=7) as led:
        led.record([dec(f"b{i}", user=f"user-{i % 4}") for i in range(50)])
        led.flush()
        assert raw_count(db) == 50
        a = led.aggregates(EXP)[0]["model_a"]
        assert (a.users, a.decisions) == (4, 50)


def test_close_loses_nothing(db: str) -> None:
    led = Ledger(db)
    for i in range(10_000):
        led.record(dec(f"c{i}", "model_a" if i % 2 else "model_b", flagged=i % 7 == 0,
                       user=f"user-{i % 100}"))
        if i % 1000 == 0:
            led.record_errors([err(f"user-{i % 100}", "model_a")])
    led.close()
    assert raw_count(db) == 10_000
    with Ledger(db) as again:
        totals = arm_totals(again.aggregates(EXP))
    assert totals["model_a"].decisions + totals["model_b"].decisions == 10_000
    assert totals["model_a"].flagged + totals["model_b"].flagged == len(range(0, 10_000, 7))
    assert totals["model_a"].errors == 10
    # model_a: the 50 odd users, plus user-0 whose only model_a rows are its errors.
    assert (totals["model_a"].users, totals["model_b"].users) == (51, 50)


def test_a_poison_request_is_refused_alone(ledger: Ledger, db: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="fraud.store.writer"):
        futures = [ledger.record([dec("ok-1", user="alice")]),
                   ledger.record([dec("bad-\udc80", user="alice")]),  # not encodable as UTF-8
                   ledger.record([dec("ok-2", user="alice"), dec("ok-3", user="bad-\udc80")]),
                   ledger.record([dec("ok-4", user="alice", flagged=True)])]
        ledger.flush()
    for i, future in enumerate(futures):
        if i in (1, 2):  # refused, and the caller told so: a request is stored whole or not
            with pytest.raises(DecisionRejected, match="refused"):
                future.result(timeout=5)
        else:
            assert future.result(timeout=5) is None
    assert ledger.pending() == 0 and ledger.problem is None
    assert raw_count(db) == 2
    assert ledger.lookup("ok-1") is not None and ledger.lookup("ok-4") is not None
    assert ledger.lookup("ok-2") is None
    a = ledger.aggregates(EXP)[0]["model_a"]
    assert counts(a) == (1, 2, 1, 0, 0, 0, 0, 0, 0)
    assert "refusing a request's decisions" in caplog.text
    ledger.record([dec("ok-5", user="alice")]).result(timeout=5)  # the ledger keeps working
    assert ledger.aggregates(EXP)[0]["model_a"].decisions == 3


def test_poison_scoring_error_does_not_block_the_ledger(db: str) -> None:
    led = Ledger(db, flush_interval=60)
    led.record([dec("good", user="alice")])
    with pytest.raises(UnicodeEncodeError):  # refused when recorded, never queued
        led.record_errors([err("bad-\udc80"), err("alice")])
    try:
        led.flush()
        assert led.aggregates(EXP)[0]["model_a"].decisions == 1
        assert led.label("good", True, wait=0) == "created"
    finally:
        with contextlib.suppress(Exception):
            led.close()
    assert raw_count(db) == 1


# -- scoring errors --------------------------------------------------------------------------------


def test_errors_count_per_row_and_per_user(ledger: Ledger) -> None:
    ledger.record([dec("d1", user="alice"), dec("d2", user="alice")])
    ledger.record_errors([err("alice"), err("alice"), err("bob"),  # bob: errors only
                          err("alice", "model_b"), err("alice", period=1),
                          err("alice", experiment=EXP + 1)])
    ledger.record_errors(err("alice") for _ in range(3))  # any iterable
    periods = ledger.aggregates(EXP)
    a0 = periods[0]["model_a"]
    assert (a0.users, a0.decisions, a0.errors) == (2, 2, 6)
    # Error rate per user: alice attempted 2 + 5 = 7 and failed 5; bob attempted 1, failed 1.
    assert a0.error == RatioMoments(2, 8, 6, 7 * 7 + 1, 5 * 5 + 1, 7 * 5 + 1)
    assert a0.flag == RatioMoments(1, 2, 0, 4, 0, 0)  # bob never got a decision
    assert counts(periods[0]["model_b"]) == (1, 0, 0, 1, 0, 0, 0, 0, 0)
    assert counts(periods[1]["model_a"]) == (1, 0, 0, 1, 0, 0, 0, 0, 0)
    assert counts(ledger.aggregates(EXP + 1)[0]["model_a"]) == (1, 0, 0, 1, 0, 0, 0, 0, 0)


# -- persistence, state and migration --------------------------------------------------------------


def test_data_survives_reopen(db: str) -> None:
    with Ledger(db) as led:
        rec, _ = led.current_experiment(IDENTITY, "t0")
        assert led.compare_and_set(rec.id, 0, {"share": 0.3})
        led.record([dec("k1", flagged=True, latency=4.0, ts=1.0),
                    dec("k2", "model_b", latency=6.0, ts=2.0),
                    dec("k3", flagged=True, ts=3.0, user="u-k1")])
        led.record_errors([err("u-k2", "model_b")])
        assert led.label("k1", False) == "created"
        assert led.mature(2.5) == 1  # k2
        before = led.aggregates(EXP)
        lat_before = led.latencies(EXP, 0, 10)
    with Ledger(db) as led:
        assert led.aggregates(EXP) == before
        assert led.latencies(EXP, 0, 10) == lat_before == {"model_a": [5.0, 4.0],
                                                           "model_b": [6.0]}
        assert counts(before[0]["model_a"]) == (1, 2, 2, 0, 1, 0, 1, 0, 0)
        assert counts(before[0]["model_b"]) == (1, 1, 0, 1, 0, 0, 0, 0, 1)
        k2 = led.lookup("k2")
        assert k2 == Decision("k2", 2.0, "u-k2", "model_b", "fraud_model_b:v1", 0.1, False,
                              6.0, "predict", EXP, 0)
        assert led.label("k1", False) == "duplicate"
        assert led.label("k1", True) == "conflict"
        assert led.mature(2.5) == 0  # matured and labelled rows stay so across reopen
        again, replaced = led.current_experiment(IDENTITY, "t1")
        assert (again.id, again.state, again.version, replaced) == (rec.id, {"share": 0.3}, 1,
                                                                     None)


def test_state_set_get_across_reopen_and_processes(db: str) -> None:
    rollback = {"rolled_back": True, "reason": "error rate 7% > 5%", "at": "2026-01-01T00:00Z"}
    with Ledger(db) as led, Ledger(db) as other:
        assert led.get_state("experiment") is None
        led.set_state("experiment", {"share": 0.1})
        led.set_state("experiment", rollback)  # overwrite
        assert other.get_state("experiment") == rollback  # visible to another worker at once
    with Ledger(db) as led:
        assert led.get_state("experiment") == rollback
        assert led.get_state("other") is None
    updated_at = raw(db, "SELECT updated_at FROM state")[0][0]
    assert abs(updated_at - time.time()) < 60


# -- fork safety -----------------------------------------------------------------------------------

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _in_fork(child: Any) -> int:
    """Run `child()` in a forked process; its exit status (0 if it returned truthy)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = 0 if child() else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@needs_fork
def test_forked_child_refuses_the_parents_ledger_and_opens_its_own(db: str) -> None:
    with Ledger(db, flush_interval=60) as led:
        led.record([dec("parent-1")])
        led.flush()

        def child() -> bool:
            try:
                led.record([dec("child-via-parent")])
                return False
            except RuntimeError as exc:
                if "fork" not in str(exc):
                    return False
            try:
                led.record_errors([err("x")])
                return False
            except RuntimeError:
                pass
            with Ledger(db) as own:  # the supported way: a ledger per process
                own.record([dec("child-1")])
            return True

        assert _in_fork(child) == 0
        led.record([dec("parent-2")])  # the parent's ledger is unaffected
    assert raw_count(db) == 3
    with Ledger(db) as led:
        assert led.lookup("child-via-parent") is None
        assert led.aggregates(EXP)[0]["model_a"].decisions == 3


@needs_fork
def test_forked_child_does_not_write_the_parents_queue(db: str) -> None:
    with Ledger(db, flush_interval=60, max_batch=10_000) as led:
        led.record([dec(f"q{i}", user="alice") for i in range(5)])
        led.record_errors([err("alice")] * 3)

        def child() -> bool:
            with contextlib.suppress(Exception):
                led.aggregates(EXP)  # a read in the child, on the parent's ledger
            return True

        assert _in_fork(child) == 0
    with Ledger(db) as led:
        a = led.aggregates(EXP)[0]["model_a"]
    assert (a.decisions, a.errors) == (5, 3)

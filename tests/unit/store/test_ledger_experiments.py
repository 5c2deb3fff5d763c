"""Experiments in the ledger: identity, history, compare-and-set state; and migrating
ledgers written by earlier releases."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from ledger_support import (
    EXP,
    IDENTITY,
    _cas_incrementer,
    counts,
    dec,
    err,
    raw_count,
    run_workers,
)

from fraud.store.records import Decision
from fraud.store.writer import Ledger

# -- experiments -----------------------------------------------------------------------------------


def test_current_experiment_keeps_identity_and_replaces_on_change(ledger: Ledger) -> None:
    first, replaced = ledger.current_experiment(IDENTITY, "2026-01-01T00:00:00Z")
    assert replaced is None
    assert (first.identity(), first.started_at, first.ended_at) == (
        IDENTITY, "2026-01-01T00:00:00Z", None)
    assert (first.state, first.version, first.final, first.end_reason) == ({}, 0, None, None)

    same, replaced = ledger.current_experiment(IDENTITY, "2026-01-05T00:00:00Z")
    assert (same, replaced) == (first, None)  # same identity: the same experiment, untouched

    changes = [(("salt-2", IDENTITY[1], IDENTITY[2]), "salt changed"),
               (("salt-2", "fraud_a:v2", IDENTITY[2]), "model_a changed"),
               (("salt-2", "fraud_a:v2", "fraud_b:v9"), "model_b changed"),
               (("salt-3", "fraud_a:v3", "fraud_b:v3"), "salt, model_a, model_b changed")]
    previous = first
    for day, (identity, reason) in enumerate(changes, start=10):
        at = f"2026-01-{day}T00:00:00Z"
        new, old = ledger.current_experiment(identity, at)
        assert old is not None
        assert (old.id, old.ended_at, old.end_reason) == (previous.id, at, reason)
        assert (new.identity(), new.started_at, new.ended_at, new.version) == (
            identity, at, None, 0)
        assert new.id > previous.id
        previous = new
    # Back to the first identity: a new experiment, not the old one reopened.
    again, old = ledger.current_experiment(IDENTITY, "2026-02-01T00:00:00Z")
    assert again.id != first.id and old is not None and old.id == previous.id
    history = ledger.experiments()
    assert [r.id for r in history] == sorted((r.id for r in history), reverse=True)
    assert len(history) == 1 + len(changes) + 1
    assert [r.ended_at is None for r in history] == [True] + [False] * (len(history) - 1)
    assert history[-1] == ledger.experiment(first.id)
    assert history[-1].end_reason == "salt changed"


def test_current_experiment_agrees_between_two_ledgers(db: str) -> None:
    with Ledger(db) as one, Ledger(db) as two:
        a, _ = one.current_experiment(IDENTITY, "t0")
        b, replaced = two.current_experiment(IDENTITY, "t1")
        assert (b, replaced) == (a, None)
        c, replaced = two.current_experiment(("other", *IDENTITY[1:]), "t2")
        assert replaced is not None and replaced.id == a.id
        assert one.experiment(a.id).ended_at == "t2"  # type: ignore[union-attr]
        assert [r.id for r in one.experiments()] == [c.id, a.id]


def test_compare_and_set_semantics(ledger: Ledger) -> None:
    rec, _ = ledger.current_experiment(IDENTITY, "t0")
    assert ledger.compare_and_set(rec.id, 0, {"share": 0.5, "period": 1})
    got = ledger.experiment(rec.id)
    assert got is not None
    assert (got.state, got.version) == ({"share": 0.5, "period": 1}, 1)
    assert not ledger.compare_and_set(rec.id, 0, {"share": 0.9})  # stale version
    assert not ledger.compare_and_set(rec.id, 2, {"share": 0.9})  # future version
    assert not ledger.compare_and_set(rec.id + 100, 0, {"share": 0.9})  # no such experiment
    assert ledger.experiment(rec.id) == got
    assert ledger.compare_and_set(rec.id, 1, {"rolled_back": True})  # replaces the whole state
    got = ledger.experiment(rec.id)
    assert got is not None and (got.state, got.version) == ({"rolled_back": True}, 2)
    # An ended experiment takes no more state changes, whatever the version.
    ledger.current_experiment(("salt-2", *IDENTITY[1:]), "t1")
    assert not ledger.compare_and_set(rec.id, 2, {"share": 0.1})
    ended = ledger.experiment(rec.id)
    assert ended is not None and (ended.state, ended.version) == ({"rolled_back": True}, 2)


def test_compare_and_set_lost_race_between_two_ledgers(db: str) -> None:
    with Ledger(db) as one, Ledger(db) as two:
        rec, _ = one.current_experiment(IDENTITY, "t0")
        seen_one, seen_two = one.experiment(rec.id), two.experiment(rec.id)
        assert seen_one is not None and seen_two is not None
        assert seen_one.version == seen_two.version == 0
        assert one.compare_and_set(rec.id, seen_one.version, {"share": 0.5})
        assert not two.compare_and_set(rec.id, seen_two.version, {"share": 0.1})  # lost
        fresh = two.experiment(rec.id)
        assert fresh is not None and (fresh.state, fresh.version) == ({"share": 0.5}, 1)
        assert two.compare_and_set(rec.id, fresh.version, {**fresh.state, "period": 2})
        final = one.experiment(rec.id)
        assert final is not None and (final.state, final.version) == (
            {"share": 0.5, "period": 2}, 2)


def test_compare_and_set_across_processes_loses_no_update(db: str) -> None:
    workers, n = 3, 20
    with Ledger(db) as led:
        rec, _ = led.current_experiment(IDENTITY, "t0")
    lost = run_workers(workers, lambda w, start, results: (
        _cas_incrementer, (str(db), rec.id, w, n, start, results)))
    with Ledger(db) as led:
        final = led.experiment(rec.id)
    assert final is not None
    assert final.state["n"] == final.version == workers * n
    assert Counter(final.state["by"]) == dict.fromkeys(range(workers), n)
    assert set(lost) == set(range(workers))  # (how many CAS each lost is timing-dependent)


def test_finish_stores_final_and_ends_once(ledger: Ledger) -> None:
    rec, _ = ledger.current_experiment(IDENTITY, "t0")
    # Without ended_at: the report is stored and the experiment stays open.
    ledger.finish(rec.id, None, None, {"winner": None})
    got = ledger.experiment(rec.id)
    assert got is not None
    assert (got.final, got.ended_at, got.end_reason) == ({"winner": None}, None, None)
    assert ledger.compare_and_set(rec.id, 0, {"share": 0.2})
    ledger.finish(rec.id, "t1", "rolled back: error rate", {"winner": "model_a"})
    got = ledger.experiment(rec.id)
    assert got is not None
    assert (got.final, got.ended_at, got.end_reason) == (
        {"winner": "model_a"}, "t1", "rolled back: error rate")
    assert (got.state, got.version) == ({"share": 0.2}, 1)
    assert not ledger.compare_and_set(rec.id, 1, {"share": 0.3})  # ended
    # Finishing again replaces the report but keeps when and why it ended.
    ledger.finish(rec.id, "t2", "other", {"winner": "model_b"})
    got = ledger.experiment(rec.id)
    assert got is not None
    assert (got.final, got.ended_at, got.end_reason) == ({"winner": "model_b"}, "t1",
                                                          "rolled back: error rate")
    # The identity is free again: the next start opens a new experiment.
    new, replaced = ledger.current_experiment(IDENTITY, "t3")
    assert replaced is None and new.id != rec.id
    assert [r.id for r in ledger.experiments()] == [new.id, rec.id]


OLD_DECISIONS = """
CREATE TABLE decisions (
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
)"""
OLD_ROW = ("old-1", 1_600_000_000.5, "legacy-user", "model_b", "fraud_b:old", 0.75, 1, 12.5,
           "predict")


def _old_ledger(path: Path, extra: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_DECISIONS + ";" + extra)
        conn.execute("INSERT INTO decisions (request_id, ts, user_id, arm, model_tag,"
                     " probability, is_fraud, latency_ms, source) VALUES (?,?,?,?,?,?,?,?,?)",
                     OLD_ROW)
    conn.close()


def test_migrates_an_old_schema_ledger(sqlite_db: Path) -> None:
    db = sqlite_db
    _old_ledger(db)
    with Ledger(db) as led:
        # The old row is readable, in the legacy experiment 0, period 0.
        assert led.lookup("old-1") == Decision(*OLD_ROW[:6], True, *OLD_ROW[7:])  # type: ignore[arg-type]
        assert led.lookup("old-1").experiment_id == 0  # type: ignore[union-attr]
        # New records, errors, labels, maturity and experiments all work.
        rec, _ = led.current_experiment(IDENTITY, "t0")
        led.record([dec("new-1", flagged=True, experiment=rec.id, ts=10.0),
                    dec("new-2", experiment=rec.id, period=1, ts=20.0)])
        led.record_errors([err("u-new-1", experiment=rec.id)])
        assert led.label("new-1", True) == "created"
        assert led.label("old-1", False) == "created"
        assert led.mature(15.0) == 0  # the old row is now labelled, new-1 too
        assert led.mature(100.0) == 1  # new-2
        periods = led.aggregates(rec.id)
        assert counts(periods[0]["model_a"]) == (1, 1, 1, 1, 1, 1, 0, 0, 0)
        assert counts(periods[1]["model_a"]) == (1, 1, 0, 0, 0, 0, 0, 0, 1)
        assert led.latencies(rec.id, 0, 10) == {"model_a": [5.0], "model_b": []}
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(decisions)")]
        assert columns[-9:] == ["experiment_id", "period", "matured", "amount",
                                "shadow_probability", "shadow_is_fraud", "counted", "explored",
                                "propensity"]
        assert conn.execute("SELECT experiment_id, period, matured FROM decisions"
                            " WHERE request_id = 'old-1'").fetchone() == (0, 0, 1)
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"decisions_latency", "decisions_unmatured"} <= indexes
    with Ledger(db) as led:  # opening a migrated ledger again changes nothing
        assert led.lookup("old-1") is not None
        assert raw_count(db) == 3


# The rest of the previous release's schema (fraud/store/writer.py before the per-user rework): its
# label trigger has the same name as the new one.
PREVIOUS_RELEASE = """
CREATE INDEX decisions_arm_source_ts ON decisions (arm, source, ts, latency_ms);
CREATE TABLE labels (request_id TEXT PRIMARY KEY, is_fraud INTEGER NOT NULL, ts REAL NOT NULL);
CREATE TABLE error_counts (arm TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
                           PRIMARY KEY (arm, kind));
CREATE TABLE arm_stats (
    arm TEXT PRIMARY KEY, total INTEGER NOT NULL DEFAULT 0, flagged INTEGER NOT NULL DEFAULT 0,
    labelled INTEGER NOT NULL DEFAULT 0, tp INTEGER NOT NULL DEFAULT 0,
    fp INTEGER NOT NULL DEFAULT 0, fn INTEGER NOT NULL DEFAULT 0, tn INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER labels_count AFTER INSERT ON labels
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
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
INSERT INTO arm_stats (arm) VALUES ('model_a'), ('model_b');
"""


def test_migrates_a_previous_release_ledger_labels_counted(sqlite_db: Path) -> None:
    db = sqlite_db
    _old_ledger(db, PREVIOUS_RELEASE)
    with Ledger(db) as led:
        assert led.lookup("old-1") is not None
        led.record([dec("new-1", flagged=True, ts=10.0), dec("new-2", flagged=True, ts=10.0)])
        assert led.label("new-1", True) == "created"
        assert led.mature(100.0) == 1  # new-2: new-1 is labelled, old-1 is newer
        assert counts(led.aggregates(EXP)[0]["model_a"]) == (2, 2, 2, 0, 1, 1, 1, 0, 0)

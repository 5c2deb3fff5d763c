"""The decision/label ledger, without a server: batching, labels, per-user aggregates, maturity,
experiments and their compare-and-set state, migration, several processes."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud.aggregates import ArmPeriod
from fraud.ledger import Decision, LabelOutcome, ScoringError, SQLiteLedger
from fraud.ratio import RatioMoments

SPAWN = mp.get_context("spawn")
EXP = 1  # the experiment id most tests record into
IDENTITY = ("salt-1", "fraud_a:v1", "fraud_b:v1")


def dec(rid: str, arm: str = "model_a", *, flagged: bool = False, latency: float = 5.0,
        ts: float | None = None, source: str = "predict", user: str | None = None,
        experiment: int = EXP, period: int = 0) -> Decision:
    """A decision with defaults for everything a test does not care about (one user per id)."""
    return Decision(request_id=rid, ts=time.time() if ts is None else ts,
                    user_id=f"u-{rid}" if user is None else user, arm=arm,  # type: ignore[arg-type]
                    model_tag=f"fraud_{arm}:v1", probability=0.9 if flagged else 0.1,
                    is_fraud=flagged, latency_ms=latency, source=source,  # type: ignore[arg-type]
                    experiment_id=experiment, period=period)


def err(user: str, arm: str = "model_a", *, experiment: int = EXP,
        period: int = 0) -> ScoringError:
    return ScoringError(experiment, period, arm, user)  # type: ignore[arg-type]


def raw_count(path: Path, table: str = "decisions") -> int:
    """Rows in a table, read with a plain sqlite3 connection (no ledger involved)."""
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def counts(agg: ArmPeriod) -> tuple[int, ...]:
    """The plain counts of an ArmPeriod (no moments), for compact assertions."""
    return (agg.users, agg.decisions, agg.flagged, agg.errors, agg.labelled,
            agg.tp, agg.fp, agg.fn, agg.tn)


def arm_totals(periods: dict[int, dict[str, ArmPeriod]]) -> dict[str, ArmPeriod]:
    """Every arm pooled over periods (both arms present, zeroed if unseen)."""
    out = {"model_a": ArmPeriod(), "model_b": ArmPeriod()}
    for arms in periods.values():
        for arm, agg in arms.items():
            out[arm] = out[arm] + agg
    return out


def run_workers(workers: int, job: Any) -> dict[Any, Any]:
    """Start `workers` spawned processes at once (a barrier); collect their (key, value)s.

    `job(w, start, results)` gives the target and args of worker w.
    """
    start, results = SPAWN.Barrier(workers, timeout=30), SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=args)
             for target, args in (job(w, start, results) for w in range(workers))]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "ledger.db"


@pytest.fixture
def ledger(db: Path):
    with SQLiteLedger(db) as led:
        yield led


# -- a brute-force model of the ledger's aggregates ------------------------------------------------

Key = tuple[int, int, str, str]  # experiment, period, arm, user
FIELDS = ("decisions", "flagged", "errors", "labelled", "tp", "fp", "fn", "tn")


@dataclass
class Model:
    """The documented semantics, event by event, on plain Python objects."""

    decisions: dict[str, Decision] = field(default_factory=dict)  # first one per request_id
    labels: dict[str, bool] = field(default_factory=dict)  # first label per request_id
    errors: Counter[Key] = field(default_factory=Counter)
    counted: dict[str, str] = field(default_factory=dict)  # request_id -> tp/fp/fn/tn
    matured: set[str] = field(default_factory=set)

    def record(self, ds: Iterable[Decision]) -> None:
        for d in ds:
            self.decisions.setdefault(d.request_id, d)

    def record_errors(self, es: Iterable[ScoringError]) -> None:
        for e in es:
            self.errors[(e.experiment_id, e.period, e.arm, e.user_id)] += 1

    def label(self, rid: str, truth: bool) -> str:
        if rid not in self.decisions:
            return "unknown"
        if rid in self.labels:
            return "duplicate" if self.labels[rid] == truth else "conflict"
        self.labels[rid] = truth
        flagged = self.decisions[rid].is_fraud
        if rid not in self.counted:
            self.counted[rid] = ("tp" if flagged else "fn") if truth else \
                ("fp" if flagged else "tn")
        elif truth:  # matured as legit, turns out fraud
            self.counted[rid] = {"fp": "tp", "tn": "fn"}[self.counted[rid]]
        self.matured.add(rid)
        return "created"

    def mature(self, before_ts: float) -> int:
        n = 0
        for rid, d in self.decisions.items():
            if rid not in self.matured and d.ts < before_ts:
                self.counted[rid] = "fp" if d.is_fraud else "tn"
                self.matured.add(rid)
                n += 1
        return n

    def per_user(self) -> dict[Key, dict[str, int]]:
        users: dict[Key, dict[str, int]] = {}

        def row(key: Key) -> dict[str, int]:
            return users.setdefault(key, dict.fromkeys(FIELDS, 0))

        for rid, d in self.decisions.items():
            r = row((d.experiment_id, d.period, d.arm, d.user_id))
            r["decisions"] += 1
            r["flagged"] += int(d.is_fraud)
            r["labelled"] += int(rid in self.labels)
            if rid in self.counted:
                r[self.counted[rid]] += 1
        for key, n in self.errors.items():
            row(key)["errors"] += n
        return users

    def arrays(self, experiment: int) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        """period -> arm -> field -> per-user array (users in a stable order)."""
        out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
        for (eid, period, arm, _user), r in sorted(self.per_user().items()):
            if eid != experiment:
                continue
            cols = out.setdefault(period, {}).setdefault(arm, {f: [] for f in FIELDS})
            for f in FIELDS:
                cols[f].append(r[f])
        return {p: {a: {f: np.array(v, dtype=np.int64) for f, v in cols.items()}
                    for a, cols in arms.items()} for p, arms in out.items()}

    def aggregates(self, experiment: int) -> dict[int, dict[str, ArmPeriod]]:
        return {p: {a: ArmPeriod.from_users(c["decisions"], c["flagged"], c["errors"],
                                            c["labelled"], c["tp"], c["fp"], c["fn"], c["tn"])
                    for a, c in arms.items()}
                for p, arms in self.arrays(experiment).items()}


def numpy_moments(x: np.ndarray, y: np.ndarray) -> RatioMoments:
    """Per-user ratio moments written out with numpy (independent of RatioMoments.from_arrays)."""
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    return RatioMoments(clusters=int((x > 0).sum()), sx=float(np.sum(xf)), sy=float(np.sum(yf)),
                        sxx=float(np.sum(xf * xf)), syy=float(np.sum(yf * yf)),
                        sxy=float(np.sum(xf * yf)))


def random_workload(seed: int, experiments: tuple[int, int]) -> list[tuple[str, Any]]:
    """A random sequence of ledger operations: decisions (with duplicate ids), errors, labels
    of both kinds (with duplicates and conflicts), maturity sweeps; users with several
    decisions, two periods, two experiments sharing user names."""
    rng = random.Random(seed)
    users = [f"user-{i}" for i in range(30)]
    ops: list[tuple[str, Any]] = []
    rids: list[str] = []
    for step in range(6):
        batch = []
        for i in range(120):
            if rids and rng.random() < 0.05:  # an id seen before, with different fields
                rid = rng.choice(rids)
            else:
                rid = f"s{seed}-{step}-{i}"
                rids.append(rid)
            batch.append(dec(rid, rng.choice(("model_a", "model_b")), flagged=rng.random() < 0.3,
                             ts=rng.uniform(0.0, 1000.0), user=rng.choice(users),
                             experiment=rng.choice(experiments), period=rng.randrange(2),
                             latency=rng.uniform(1.0, 50.0),
                             source=rng.choice(("predict", "predict", "batch"))))
        ops.append(("record", batch))
        ops.append(("errors", [err(rng.choice([*users, "only-errors"]),
                                   rng.choice(("model_a", "model_b")),
                                   experiment=rng.choice(experiments), period=rng.randrange(2))
                               for _ in range(rng.randrange(0, 25))]))
        for rid in rng.sample(rids, k=len(rids) // 6):
            ops.append(("label", (rid, rng.random() < 0.4)))
        if step in (2, 4):
            ops.append(("mature", 250.0 * step))
    ops.append(("label", ("never-recorded", True)))
    return ops


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
        # Users are shared by the workers: their rows in user_stats are updated by all of them.
        led.record(dec(f"w{worker}-{i}", arm, flagged=i % 5 == 0, latency=float(i % 40),
                       user=f"user-{i % 17}", period=i % 2))
        if i % 100 == 0:
            led.record_errors([err(f"user-{i % 17}", arm, period=i % 2),
                               err("user-errors-only", arm)])
            time.sleep(0.002)  # pace a little so the workers' batches overlap in time
        if i % 200 == 0 and shared:  # race the other workers to label the shared decisions
            rid = shared.pop(0)
            outcomes[rid] = str(led.label(rid, worker % 2 == 0))
    for rid in shared:
        outcomes[rid] = str(led.label(rid, worker % 2 == 0))
    led.close()
    results.put((worker, outcomes))


def _cas_incrementer(path: str, experiment_id: int, worker: int, n: int, start: Any,
                     results: Any) -> None:
    lost = 0
    with SQLiteLedger(path) as led:
        start.wait(30)
        for _ in range(n):
            while True:
                rec = led.experiment(experiment_id)
                assert rec is not None
                state = {"n": rec.state.get("n", 0) + 1,
                         "by": [*rec.state.get("by", []), worker]}
                if led.compare_and_set(experiment_id, rec.version, state):
                    break
                lost += 1
    results.put((worker, lost))


# -- construction ----------------------------------------------------------------------------------


def test_opens_wal_database_creating_parent_dirs(db: Path) -> None:
    assert not db.parent.exists()
    with SQLiteLedger(db) as led:
        assert led.label_wait == pytest.approx(0.15)
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rejects_non_positive_settings(db: Path) -> None:
    for kwargs in ({"flush_interval": 0}, {"max_batch": 0}, {"latency_window": 0}):
        with pytest.raises(ValueError, match="positive"):
            SQLiteLedger(db, **kwargs)


def test_empty_ledger_has_no_aggregates_latencies_or_experiments(ledger: SQLiteLedger) -> None:
    assert ledger.aggregates(EXP) == {}
    assert ledger.latencies(EXP, 0, 100) == {"model_a": [], "model_b": []}
    assert ledger.experiments() == []
    assert ledger.experiment(1) is None
    assert ledger.mature(time.time()) == 0


# -- record / flush / aggregates -------------------------------------------------------------------


def test_record_flush_and_aggregates_exact(ledger: SQLiteLedger) -> None:
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


def test_duplicate_request_id_is_stored_and_counted_once(ledger: SQLiteLedger) -> None:
    first = dec("same", flagged=True, user="alice")
    ledger.record([first, dec("same", "model_b", flagged=False, user="bob")])
    ledger.flush()
    # Again in a later batch, in another experiment and period: still ignored.
    ledger.record([dec("same", "model_b", flagged=True, user="carol", experiment=2, period=1)])
    ledger.flush()
    assert ledger.lookup("same") == first
    assert raw_count(ledger.path) == 1
    assert ledger.label("same", True) == "created"
    assert ledger.label("same", True) == "duplicate"
    assert ledger.aggregates(2) == {}
    periods = ledger.aggregates(EXP)
    assert list(periods[0]) == ["model_a"]
    assert counts(periods[0]["model_a"]) == (1, 1, 1, 0, 1, 1, 0, 0, 0)
    with sqlite3.connect(ledger.path) as conn:
        assert conn.execute("SELECT user_id, decisions FROM user_stats").fetchall() == [
            ("alice", 1)]


def test_lookup_roundtrips_every_field(ledger: SQLiteLedger) -> None:
    d = Decision("r-1", 1_700_000_000.123456, "user_9", "model_b", "fraud_b:abc", 0.731,
                 True, 3.25, "batch", 7, 3)
    ledger.record([d])
    assert ledger.lookup("r-1") == d  # lookup flushes this process's queue first
    assert ledger.lookup("nope") is None
    legacy = Decision("r-2", 1.0, "u", "model_a", "t", 0.0, False, 0.0, "predict")
    assert (legacy.experiment_id, legacy.period) == (0, 0)  # the defaults
    ledger.record(legacy)
    assert ledger.lookup("r-2") == legacy


def test_record_validates_and_refuses_after_close(db: Path) -> None:
    led = SQLiteLedger(db)
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


def test_errors_are_counted_on_flush(db: Path) -> None:
    with SQLiteLedger(db, flush_interval=60, max_batch=10_000) as writer, \
            SQLiteLedger(db) as reader:
        writer.record_errors([err("u-r0"), err("u-r0")])  # errors do not wake the writer
        assert writer.pending() == 2
        assert reader.aggregates(EXP) == {}
        writer.flush()
        assert writer.pending() == 0
        a = reader.aggregates(EXP)[0]["model_a"]
        assert (a.users, a.decisions, a.errors) == (1, 0, 2)


def test_record_completes_once_committed_and_visible_to_other_processes(db: Path) -> None:
    with SQLiteLedger(db, flush_interval=60) as writer, SQLiteLedger(db) as reader:
        done = writer.record([dec(f"r{i}") for i in range(5)])
        done.result(timeout=5)  # the writer woke at once: no interval wait
        a = reader.aggregates(EXP)[0]["model_a"]
        assert (a.users, a.decisions) == (5, 5)
        assert writer.pending() == 0 and writer.problem is None


def test_concurrent_records_share_commits(db: Path) -> None:
    """Group commit: while one transaction commits, new records queue and go in the next."""
    with SQLiteLedger(db) as led:
        commits = []
        original = led._write

        def counted(rows, errors):
            commits.append(len(rows))
            time.sleep(0.01)  # a slow disk: records pile up meanwhile
            original(rows, errors)

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


def test_flush_writes_in_batches_of_max_batch(db: Path) -> None:
    with SQLiteLedger(db, flush_interval=60, max_batch=7) as led:
        led.record([dec(f"b{i}", user=f"user-{i % 4}") for i in range(50)])
        led.flush()
        assert raw_count(db) == 50
        a = led.aggregates(EXP)[0]["model_a"]
        assert (a.users, a.decisions) == (4, 50)


def test_close_loses_nothing(db: Path) -> None:
    led = SQLiteLedger(db)
    for i in range(10_000):
        led.record(dec(f"c{i}", "model_a" if i % 2 else "model_b", flagged=i % 7 == 0,
                       user=f"user-{i % 100}"))
        if i % 1000 == 0:
            led.record_errors([err(f"user-{i % 100}", "model_a")])
    led.close()
    assert raw_count(db) == 10_000
    with SQLiteLedger(db) as again:
        totals = arm_totals(again.aggregates(EXP))
    assert totals["model_a"].decisions + totals["model_b"].decisions == 10_000
    assert totals["model_a"].flagged + totals["model_b"].flagged == len(range(0, 10_000, 7))
    assert totals["model_a"].errors == 10
    # model_a: the 50 odd users, plus user-0 whose only model_a rows are its errors.
    assert (totals["model_a"].users, totals["model_b"].users) == (51, 50)


def test_poison_decision_is_dropped_alone(ledger: SQLiteLedger,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="fraud.ledger"):
        ledger.record([dec("ok-1", user="alice"),
                       dec("bad-\udc80", user="alice"),  # not encodable as UTF-8
                       dec("ok-2", user="bad-\udc80"),
                       dec("ok-3", user="alice", flagged=True)])
        ledger.flush()
    assert ledger.pending() == 0
    assert raw_count(ledger.path) == 2
    assert ledger.lookup("ok-1") is not None and ledger.lookup("ok-3") is not None
    a = ledger.aggregates(EXP)[0]["model_a"]
    assert counts(a) == (1, 2, 1, 0, 0, 0, 0, 0, 0)
    assert "dropping unwritable decision" in caplog.text
    ledger.record([dec("ok-4", user="alice")])  # the ledger keeps working
    assert ledger.aggregates(EXP)[0]["model_a"].decisions == 3


def test_poison_scoring_error_does_not_block_the_ledger(db: Path) -> None:
    led = SQLiteLedger(db, flush_interval=60)
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


def test_errors_count_per_row_and_per_user(ledger: SQLiteLedger) -> None:
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


# -- per-user aggregates against a brute-force recomputation ---------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_user_aggregates_match_brute_force(db: Path, seed: int) -> None:
    with SQLiteLedger(db, flush_interval=60, max_batch=37) as led:
        e1, _ = led.current_experiment(("s1", "a:1", "b:1"), "2026-01-01T00:00:00Z")
        e2, _ = led.current_experiment(("s2", "a:1", "b:1"), "2026-01-02T00:00:00Z")
        model = Model()
        for op, arg in random_workload(seed, (e1.id, e2.id)):
            if op == "record":
                led.record(arg)
                model.record(arg)
            elif op == "errors":
                led.record_errors(arg)
                model.record_errors(arg)
            elif op == "label":
                rid, truth = arg
                assert led.label(rid, truth, wait=0) == model.label(rid, truth), rid
            else:
                assert led.mature(arg) == model.mature(arg)
        # A few more late labels on decisions the sweeps matured, of both kinds.
        late = sorted(model.matured - set(model.labels))[:20]
        for i, rid in enumerate(late):
            assert led.label(rid, i % 2 == 0) == model.label(rid, i % 2 == 0) == "created"

        for eid in (e1.id, e2.id, 999):
            got, want = led.aggregates(eid), model.aggregates(eid)
            assert got == want, eid
            # the running sums the triggers keep equal a full scan of the per-user rows
            assert led.aggregates(eid, scan=True) == got, eid
        # Both experiments really had data in both periods, and labels/maturity of all kinds.
        both = [led.aggregates(e) for e in (e1.id, e2.id)]
        assert all(set(p) == {0, 1} for p in both)
        total = sum((arm_totals(p)["model_a"] + arm_totals(p)["model_b"] for p in both),
                    ArmPeriod())
        assert min(total.tp, total.fp, total.fn, total.tn, total.errors) > 0
        assert total.labelled < total.mature  # some are mature through the sweep only
        assert total.decisions == len(model.decisions) < sum(
            len(arg) for op, arg in random_workload(seed, (e1.id, e2.id)) if op == "record")

        # Latencies: per experiment and period, single predictions, newest first.
        for eid in (e1.id, e2.id):
            for period in (0, 1):
                lat = led.latencies(eid, period, 10_000)
                for arm in ("model_a", "model_b"):
                    rows = sorted((d for d in model.decisions.values()
                                   if (d.experiment_id, d.period, d.arm, d.source)
                                   == (eid, period, arm, "predict")),
                                  key=lambda d: d.ts, reverse=True)
                    assert lat[arm] == [d.latency_ms for d in rows]
                    assert led.latencies(eid, period, 5)[arm] == lat[arm][:5]


def test_moments_equal_numpy_on_per_user_arrays(db: Path) -> None:
    rng = np.random.default_rng(7)
    model = Model()
    with SQLiteLedger(db, flush_interval=60) as led:
        # 40 users with very different volumes, so squares and cross products matter.
        ds, es = [], []
        for u in range(40):
            arm = ("model_a", "model_b")[u % 2]
            for k in range(int(rng.integers(0, 12))):
                ds.append(dec(f"m{u}-{k}", arm, flagged=bool(rng.random() < 0.4),
                              user=f"user-{u}", ts=float(rng.uniform(0, 100))))
            es += [err(f"user-{u}", arm)] * int(rng.integers(0, 4))
        led.record(ds)
        model.record(ds)
        led.record_errors(es)
        model.record_errors(es)
        for d in ds[::3]:
            truth = bool(rng.random() < 0.5)
            assert led.label(d.request_id, truth) == model.label(d.request_id, truth)
        assert led.mature(50.0) == model.mature(50.0)
        got = led.aggregates(EXP)[0]

    for arm, c in model.arrays(EXP)[0].items():
        g = got[arm]
        assert g.flag == numpy_moments(c["decisions"], c["flagged"])
        assert g.error == numpy_moments(c["decisions"] + c["errors"], c["errors"])
        assert g.recall == numpy_moments(c["tp"] + c["fn"], c["tp"])
        assert g.precision == numpy_moments(c["tp"] + c["fp"], c["tp"])
        assert g.users == len(c["decisions"])
        assert g.flag.sxx > g.flag.sx  # several decisions per user somewhere
        assert g.recall.clusters > 1 and g.precision.clusters > 1


# -- maturity --------------------------------------------------------------------------------------


def test_mature_counts_unlabelled_old_decisions_as_legit(ledger: SQLiteLedger) -> None:
    ledger.record([
        dec("old-flag", flagged=True, ts=10.0, user="alice"),
        dec("old-pass", flagged=False, ts=20.0, user="alice"),
        dec("old-labelled", flagged=False, ts=30.0, user="bob"),
        dec("new-flag", flagged=True, ts=200.0, user="bob"),
        dec("b-old", "model_b", flagged=False, ts=5.0, user="carol", experiment=EXP + 1),
    ])
    assert ledger.label("old-labelled", True) == "created"  # fn, never matured again
    assert ledger.mature(100.0) == 3  # old-flag, old-pass, b-old (any experiment)
    a = ledger.aggregates(EXP)[0]["model_a"]
    assert counts(a) == (2, 4, 2, 0, 1, 0, 1, 1, 1)
    assert a.mature == 3
    assert counts(ledger.aggregates(EXP + 1)[0]["model_b"]) == (1, 1, 0, 0, 0, 0, 0, 0, 1)
    # Precision over mature decisions: alice 0 of 1 flagged was fraud.
    assert a.precision == RatioMoments(1, 1, 0, 1, 0, 0)
    assert ledger.mature(100.0) == 0  # nothing twice
    assert ledger.aggregates(EXP)[0]["model_a"] == a
    # A decision recorded late with an old ts matures on the next sweep; a newer one later.
    ledger.record(dec("late-old", flagged=True, ts=50.0, user="alice"))
    assert ledger.mature(100.0) == 1
    assert ledger.aggregates(EXP)[0]["model_a"].fp == 2
    assert ledger.mature(1_000.0) == 1  # new-flag
    assert counts(ledger.aggregates(EXP)[0]["model_a"]) == (2, 5, 3, 0, 1, 0, 3, 1, 1)
    with sqlite3.connect(ledger.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM decisions WHERE matured = 0").fetchone() == (0,)


def test_late_labels_after_maturity(ledger: SQLiteLedger) -> None:
    ledger.record([
        dec("fp-then-fraud", flagged=True, ts=1.0),
        dec("fp-then-legit", flagged=True, ts=2.0),
        dec("tn-then-fraud", flagged=False, ts=3.0),
        dec("tn-then-legit", flagged=False, ts=4.0),
    ])
    assert ledger.mature(10.0) == 4
    before = ledger.aggregates(EXP)[0]["model_a"]
    assert counts(before) == (4, 4, 2, 0, 0, 0, 2, 0, 2)
    assert ledger.label("fp-then-fraud", True) == "created"  # fp -> tp
    assert ledger.label("fp-then-legit", False) == "created"  # nothing moves
    assert ledger.label("tn-then-fraud", True) == "created"  # tn -> fn
    assert ledger.label("tn-then-legit", False) == "created"  # nothing moves
    after = ledger.aggregates(EXP)[0]["model_a"]
    assert counts(after) == (4, 4, 2, 0, 4, 1, 1, 1, 1)
    assert after.mature == before.mature == 4  # moved, never counted twice
    # Duplicates and conflicts of a late label change nothing; neither does another sweep.
    assert ledger.label("fp-then-fraud", True) == "duplicate"
    assert ledger.label("tn-then-legit", True) == "conflict"
    assert ledger.mature(10.0) == 0
    assert ledger.aggregates(EXP)[0]["model_a"] == after


def test_labelled_decisions_are_never_matured(ledger: SQLiteLedger) -> None:
    ledger.record([dec("l-fraud", flagged=False, ts=1.0), dec("l-legit", flagged=True, ts=1.0)])
    assert ledger.label("l-fraud", True) == "created"  # fn
    assert ledger.label("l-legit", False) == "created"  # fp
    assert ledger.mature(10.0) == 0
    assert counts(ledger.aggregates(EXP)[0]["model_a"]) == (2, 2, 1, 0, 2, 0, 1, 1, 0)


# -- latencies -------------------------------------------------------------------------------------


def test_latencies_newest_first_single_predictions_per_period(ledger: SQLiteLedger) -> None:
    ledger.record([dec(f"l{v}", latency=float(v), ts=1000.0 + v) for v in range(1, 101)])
    ledger.record([
        dec("bulk", latency=999.0, ts=5000.0, source="batch"),
        dec("p1", latency=777.0, ts=6000.0, period=1),
        dec("e2", latency=888.0, ts=7000.0, experiment=EXP + 1),
        dec("b", "model_b", latency=3.0, ts=1.0),
    ])
    ledger.flush()
    lat = ledger.latencies(EXP, 0, 10)
    assert lat == {"model_a": [float(v) for v in range(100, 90, -1)], "model_b": [3.0]}
    assert ledger.latencies(EXP, 0, 1000)["model_a"] == [float(v) for v in range(100, 0, -1)]
    assert ledger.latencies(EXP, 1, 10) == {"model_a": [777.0], "model_b": []}
    assert ledger.latencies(EXP + 1, 0, 10) == {"model_a": [888.0], "model_b": []}


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
    assert raw_count(ledger.path, "labels") == 2
    periods = ledger.aggregates(EXP)[0]
    assert (periods["model_a"].labelled, periods["model_a"].tp) == (1, 1)
    assert (periods["model_b"].labelled, periods["model_b"].tn) == (1, 1)


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
            assert counts(led.aggregates(EXP)[0]["model_b"]) == (1, 1, 1, 0, 1, 1, 0, 0, 0)
    finally:
        proc.join(30)
    assert proc.exitcode == 0


# -- experiments -----------------------------------------------------------------------------------


def test_current_experiment_keeps_identity_and_replaces_on_change(ledger: SQLiteLedger) -> None:
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


def test_current_experiment_agrees_between_two_ledgers(db: Path) -> None:
    with SQLiteLedger(db) as one, SQLiteLedger(db) as two:
        a, _ = one.current_experiment(IDENTITY, "t0")
        b, replaced = two.current_experiment(IDENTITY, "t1")
        assert (b, replaced) == (a, None)
        c, replaced = two.current_experiment(("other", *IDENTITY[1:]), "t2")
        assert replaced is not None and replaced.id == a.id
        assert one.experiment(a.id).ended_at == "t2"  # type: ignore[union-attr]
        assert [r.id for r in one.experiments()] == [c.id, a.id]


def test_compare_and_set_semantics(ledger: SQLiteLedger) -> None:
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


def test_compare_and_set_lost_race_between_two_ledgers(db: Path) -> None:
    with SQLiteLedger(db) as one, SQLiteLedger(db) as two:
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


def test_compare_and_set_across_processes_loses_no_update(db: Path) -> None:
    workers, n = 3, 20
    with SQLiteLedger(db) as led:
        rec, _ = led.current_experiment(IDENTITY, "t0")
    lost = run_workers(workers, lambda w, start, results: (
        _cas_incrementer, (str(db), rec.id, w, n, start, results)))
    with SQLiteLedger(db) as led:
        final = led.experiment(rec.id)
    assert final is not None
    assert final.state["n"] == final.version == workers * n
    assert Counter(final.state["by"]) == dict.fromkeys(range(workers), n)
    assert set(lost) == set(range(workers))  # (how many CAS each lost is timing-dependent)


def test_finish_stores_final_and_ends_once(ledger: SQLiteLedger) -> None:
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


# -- persistence, state and migration --------------------------------------------------------------


def test_data_survives_reopen(db: Path) -> None:
    with SQLiteLedger(db) as led:
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
    with SQLiteLedger(db) as led:
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


def test_migrates_an_old_schema_ledger(db: Path) -> None:
    _old_ledger(db)
    with SQLiteLedger(db) as led:
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
        assert columns[-3:] == ["experiment_id", "period", "matured"]
        assert conn.execute("SELECT experiment_id, period, matured FROM decisions"
                            " WHERE request_id = 'old-1'").fetchone() == (0, 0, 1)
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"decisions_latency", "decisions_unmatured"} <= indexes
    with SQLiteLedger(db) as led:  # opening a migrated ledger again changes nothing
        assert led.lookup("old-1") is not None
        assert raw_count(db) == 3


# The rest of the previous release's schema (fraud/ledger.py before the per-user rework): its
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


def test_migrates_a_previous_release_ledger_labels_counted(db: Path) -> None:
    _old_ledger(db, PREVIOUS_RELEASE)
    with SQLiteLedger(db) as led:
        assert led.lookup("old-1") is not None
        led.record([dec("new-1", flagged=True, ts=10.0), dec("new-2", flagged=True, ts=10.0)])
        assert led.label("new-1", True) == "created"
        assert led.mature(100.0) == 1  # new-2: new-1 is labelled, old-1 is newer
        assert counts(led.aggregates(EXP)[0]["model_a"]) == (2, 2, 2, 0, 1, 1, 1, 0, 0)


# -- several worker processes ----------------------------------------------------------------------


def test_concurrent_processes_keep_exact_totals(db: Path) -> None:
    workers, n = 3, 1500
    shared = [f"shared-{i}" for i in range(12)]
    with SQLiteLedger(db) as led:  # decisions every worker will race to label
        led.record([dec(rid, "model_b", flagged=i % 2 == 0) for i, rid in enumerate(shared)])

    outcomes = run_workers(workers, lambda w, start, results: (
        _concurrent_writer, (str(db), w, n, list(shared), start, results)))

    assert raw_count(db) == workers * n + len(shared)
    with SQLiteLedger(db) as led:
        periods = led.aggregates(EXP)
        totals = arm_totals(periods)
        a, b = totals["model_a"], totals["model_b"]
        rows_b = range(0, n, 3)
        rows_a = [i for i in range(n) if i % 3]
        err_rows = range(0, n, 100)
        assert a.decisions == workers * len(rows_a)
        assert b.decisions == workers * len(rows_b) + len(shared)
        assert a.flagged == workers * sum(1 for i in rows_a if i % 5 == 0)
        assert b.flagged == workers * sum(1 for i in rows_b if i % 5 == 0) + len(shared[::2])
        assert a.errors == workers * 2 * sum(1 for i in err_rows if i % 3)
        assert b.errors == workers * 2 * sum(1 for i in err_rows if i % 3 == 0)
        # Users: the same 17 names (plus the errors-only one) in each arm and period.
        for period in (0, 1):
            for arm, rows in (("model_a", rows_a), ("model_b", rows_b)):
                users = {i % 17 for i in rows if i % 2 == period}
                users |= {i % 17 for i in err_rows if i % 2 == period and (arm == "model_a")
                          == bool(i % 3)}
                extra = int(period == 0 and any(bool(i % 3) == (arm == "model_a")
                                                for i in err_rows))
                shared_users = len(shared) if (arm, period) == ("model_b", 0) else 0
                assert periods[period][arm].users == len(users) + extra + shared_users
                assert periods[period][arm].decisions == workers * sum(
                    1 for i in rows if i % 2 == period) + shared_users
        # Each shared decision: exactly one worker created its label; the others saw
        # duplicate (same value) or conflict (opposite value) against what is stored.
        assert (a.labelled, b.labelled) == (0, len(shared))
        stored = {rid: led.get_label(rid) for rid in shared}
        for rid in shared:
            per = {w: outcomes[w][rid] for w in range(workers)}
            assert Counter(per.values())["created"] == 1, per
            for w, outcome in per.items():
                if outcome != "created":
                    assert outcome == ("duplicate" if (w % 2 == 0) == stored[rid] else "conflict")
        flagged_shared = set(shared[::2])
        assert (b.tp, b.fp, b.fn, b.tn) == (
            sum(1 for r in shared if r in flagged_shared and stored[r]),
            sum(1 for r in shared if r in flagged_shared and not stored[r]),
            sum(1 for r in shared if r not in flagged_shared and stored[r]),
            sum(1 for r in shared if r not in flagged_shared and not stored[r]))
        # The aggregates agree with a full recount from the raw rows in SQL.
        with sqlite3.connect(db) as conn:
            recount = {arm: (n_, f) for arm, n_, f in conn.execute(
                "SELECT arm, COUNT(*), SUM(is_fraud) FROM decisions GROUP BY arm")}
            writers = [r[0].split("-")[0] for r in conn.execute(
                "SELECT request_id FROM decisions WHERE request_id LIKE 'w%' ORDER BY id")]
        assert recount == {"model_a": (a.decisions, a.flagged),
                           "model_b": (b.decisions, b.flagged)}
        # The workers really wrote concurrently: their batches interleave in the file.
        switches = sum(1 for x, y in pairwise(writers) if x != y)
        assert switches >= workers, switches  # run one after the other: workers - 1


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
def test_forked_child_refuses_the_parents_ledger_and_opens_its_own(db: Path) -> None:
    with SQLiteLedger(db, flush_interval=60) as led:
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
            with SQLiteLedger(db) as own:  # the supported way: a ledger per process
                own.record([dec("child-1")])
            return True

        assert _in_fork(child) == 0
        led.record([dec("parent-2")])  # the parent's ledger is unaffected
    assert raw_count(db) == 3
    with SQLiteLedger(db) as led:
        assert led.lookup("child-via-parent") is None
        assert led.aggregates(EXP)[0]["model_a"].decisions == 3


@needs_fork
def test_forked_child_does_not_write_the_parents_queue(db: Path) -> None:
    with SQLiteLedger(db, flush_interval=60, max_batch=10_000) as led:
        led.record([dec(f"q{i}", user="alice") for i in range(5)])
        led.record_errors([err("alice")] * 3)

        def child() -> bool:
            with contextlib.suppress(Exception):
                led.aggregates(EXP)  # a read in the child, on the parent's ledger
            return True

        assert _in_fork(child) == 0
    with SQLiteLedger(db) as led:
        a = led.aggregates(EXP)[0]["model_a"]
    assert (a.decisions, a.errors) == (5, 3)

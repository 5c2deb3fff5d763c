"""Helpers shared by the ledger tests: decision builders, a brute-force model of the
aggregates, and the targets spawned worker processes run (importable by module name)."""

from __future__ import annotations

import multiprocessing as mp
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fraud.stats.aggregates import ArmPeriod
from fraud.stats.ratio import RatioMoments
from fraud.store.records import Decision, ScoringError
from fraud.store.writer import Ledger

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


def raw(store: str | Path, query: str) -> list[tuple[Any, ...]]:
    """A query's rows, read with a plain connection to the store (no ledger involved)."""
    if str(store).startswith("postgresql://"):
        import psycopg

        with psycopg.connect(str(store)) as conn:
            return [tuple(r) for r in conn.execute(query).fetchall()]
    with sqlite3.connect(store) as conn:
        return conn.execute(query).fetchall()


def raw_count(store: str | Path, table: str = "decisions") -> int:
    """Rows in a table, read with a plain connection (no ledger involved)."""
    return int(raw(store, f"SELECT COUNT(*) FROM {table}")[0][0])


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
    with Ledger(path, flush_interval=0.05) as led:
        ready.set()
        go.wait(30)
        time.sleep(delay)
        led.record(dec(rid, "model_b", flagged=True))
        time.sleep(0.5)  # let the writer thread (not close()) write it


def _concurrent_writer(path: str, worker: int, n: int, shared: list[str], start: Any,
                       results: Any) -> None:
    led = Ledger(path, flush_interval=0.01, max_batch=50)
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
    with Ledger(path) as led:
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

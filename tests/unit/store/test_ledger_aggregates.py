"""Per-user aggregates and their running sums against a brute-force recomputation, and
the maturity sweep with late labels."""

from __future__ import annotations

import numpy as np
import pytest
from ledger_support import (
    EXP,
    Model,
    arm_totals,
    counts,
    dec,
    err,
    numpy_moments,
    random_workload,
    raw,
    raw_count,
)

from fraud.stats.aggregates import ArmPeriod
from fraud.stats.ratio import RatioMoments
from fraud.store.writer import Ledger

# -- per-user aggregates against a brute-force recomputation ---------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_user_aggregates_match_brute_force(db: str, seed: int) -> None:
    with Ledger(db, flush_interval=60, max_batch=37) as led:
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


def test_moments_equal_numpy_on_per_user_arrays(db: str) -> None:
    rng = np.random.default_rng(7)
    model = Model()
    with Ledger(db, flush_interval=60) as led:
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


def test_mature_counts_unlabelled_old_decisions_as_legit(ledger: Ledger, db: str) -> None:
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
    assert raw(db, "SELECT COUNT(*) FROM decisions WHERE matured = 0") == [(0,)]


def test_late_labels_after_maturity(ledger: Ledger) -> None:
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


def test_labelled_decisions_are_never_matured(ledger: Ledger) -> None:
    ledger.record([dec("l-fraud", flagged=False, ts=1.0), dec("l-legit", flagged=True, ts=1.0)])
    assert ledger.label("l-fraud", True) == "created"  # fn
    assert ledger.label("l-legit", False) == "created"  # fp
    assert ledger.mature(10.0) == 0
    assert counts(ledger.aggregates(EXP)[0]["model_a"]) == (2, 2, 1, 0, 2, 0, 1, 1, 0)


def test_prune_deletes_old_decisions_in_bounded_batches_and_keeps_the_counts(
        ledger: Ledger, db: str) -> None:
    old = [dec(f"old-{i}", flagged=i % 3 == 0, ts=100.0 + i, user=f"u{i % 4}") for i in range(10)]
    new = [dec(f"new-{i}", "model_b", ts=5_000.0 + i, user=f"u{i % 4}") for i in range(5)]
    ledger.record(old + new).result(timeout=5)
    assert ledger.label("old-0", True) == "created" and ledger.label("new-0", False) == "created"
    ledger.mature(1_000.0)
    before = ledger.aggregates(EXP)
    assert ledger.prune(1_000.0, batch=3, max_batches=2) == 6  # bounded work per call
    assert ledger.prune(1_000.0, batch=3, max_batches=100) == 4
    assert ledger.prune(1_000.0) == 0
    assert ledger.aggregates(EXP) == before == ledger.aggregates(EXP, scan=True)
    assert raw_count(db) == 5 and raw_count(db, "labels") == 1
    assert ledger.lookup("old-0") is None and ledger.lookup("new-4") is not None
    assert ledger.label("old-1", True, wait=0) == "unknown"  # past the horizon: a 404
    assert ledger.get_label("new-0") is False

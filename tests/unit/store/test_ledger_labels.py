"""Reads of single decisions from the ledger: latencies per period, and labels (outcomes,
the bounded wait for an unknown id, a decision written by another process)."""

from __future__ import annotations

import time

from ledger_support import (
    EXP,
    SPAWN,
    _record_later,
    counts,
    dec,
    raw_count,
)

from fraud.store.records import LabelOutcome
from fraud.store.writer import Ledger

# -- latencies -------------------------------------------------------------------------------------


def test_latencies_newest_first_single_predictions_per_period(ledger: Ledger) -> None:
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


def test_label_outcomes(ledger: Ledger, db: str) -> None:
    ledger.record([dec("r1", flagged=True), dec("r2", "model_b")])
    assert ledger.label("r1", True) == LabelOutcome.CREATED
    assert ledger.label("r1", True) == LabelOutcome.DUPLICATE
    assert ledger.label("r1", False) == LabelOutcome.CONFLICT
    assert ledger.get_label("r1") is True  # the conflicting label changed nothing
    assert ledger.label("r2", False) == "created"  # StrEnum: equal to the plain string
    assert str(ledger.label("r2", False)) == "duplicate"
    assert ledger.label("missing", True, wait=0) == LabelOutcome.UNKNOWN
    assert ledger.get_label("missing") is None
    assert raw_count(db, "labels") == 2
    periods = ledger.aggregates(EXP)[0]
    assert (periods["model_a"].labelled, periods["model_a"].tp) == (1, 1)
    assert (periods["model_b"].labelled, periods["model_b"].tn) == (1, 1)


def test_unknown_label_waits_only_a_bounded_time(db: str) -> None:
    with Ledger(db, flush_interval=0.05, label_wait=0.2) as led:
        started = time.monotonic()
        assert led.label("never-recorded", True) == LabelOutcome.UNKNOWN
        elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.0


def test_unknown_label_retry_sees_decision_from_another_process(db: str) -> None:
    ready, go = SPAWN.Event(), SPAWN.Event()
    proc = SPAWN.Process(target=_record_later, args=(str(db), "late-1", ready, go, 0.1))
    proc.start()
    try:
        with Ledger(db, flush_interval=0.05, label_wait=5.0) as led:
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



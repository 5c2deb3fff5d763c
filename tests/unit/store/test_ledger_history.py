"""The report page's history in the ledger (fraud/store/history.py), on both backends:
one look per half check interval however many writers race, thinning that keeps the span and
the looks where something changed, the hard bound, retention, and an older ledger gaining the
table."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from ledger_support import raw, run_workers

from fraud.store.backend import Backend
from fraud.store.history import HistoryStore
from fraud.store.migrate import migrate
from fraud.store.writer import Ledger


class History(HistoryStore):
    """The mixin on an open ledger's backend (the same methods Ledger gains when wired)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend


def hist(ledger: Ledger) -> HistoryStore:
    return ledger if isinstance(ledger, HistoryStore) else History(ledger.backend)


def look(i: int, verdict: str = "collecting") -> dict[str, Any]:
    return {"v": 1, "i": i, "primary": {"verdict": verdict}}


def test_a_look_is_stored_once_per_gap_and_read_back_oldest_first(ledger: Ledger) -> None:
    h = hist(ledger)
    assert h.looks(1) == []
    assert h.save_look(1, look(0), marks="m", min_gap_s=1.0, max_looks=100, now=100.0)
    assert not h.save_look(1, look(1), marks="m", min_gap_s=1.0, max_looks=100, now=100.6)
    assert h.save_look(2, look(2), marks="m", min_gap_s=1.0, max_looks=100, now=100.6)
    assert h.save_look(1, look(3), marks="m", min_gap_s=1.0, max_looks=100, now=101.2)
    assert [(x["ts"], x["i"]) for x in h.looks(1)] == [(100.0, 0), (101.2, 3)]
    assert h.looks(2) == [{**look(2), "ts": 100.6}]
    with pytest.raises(ValueError):  # NaN is not JSON: refused before the store sees it
        h.save_look(1, {"x": float("nan")}, marks="m", min_gap_s=0, max_looks=100, now=200.0)


def test_thinning_keeps_the_span_and_every_change_within_the_bound(ledger: Ledger) -> None:
    h = hist(ledger)
    verdicts = ["collecting"] * 40 + ["challenger_better"] * 40 + ["collecting"] * 40
    for i, v in enumerate(verdicts):
        assert h.save_look(7, look(i, v), marks=v, min_gap_s=0.5, max_looks=20, now=float(i))
    kept = [x["i"] for x in h.looks(7)]
    assert len(kept) <= 20
    assert kept[0] == 0 and kept[-1] == 119  # the whole span stays
    assert {40, 80} <= set(kept)  # the looks where the verdict changed stay
    assert kept == sorted(kept) and len(set(kept)) == len(kept)
    newest = [i for i in kept if i >= 110]
    assert newest == list(range(110, 120))  # the newest looks keep their full resolution


def test_marks_changing_every_look_still_bounded(ledger: Ledger) -> None:
    h = hist(ledger)
    for i in range(50):
        h.save_look(3, look(i), marks=str(i), min_gap_s=0.0, max_looks=10, now=float(i))
    assert [x["i"] for x in h.looks(3)] == list(range(40, 50))


def test_prune_deletes_looks_past_the_horizon(ledger: Ledger) -> None:
    h = hist(ledger)
    for eid in (1, 2):
        for i in range(5):
            h.save_look(eid, look(i), marks="m", min_gap_s=0.0, max_looks=100, now=10.0 * i)
    assert h.prune_looks(25.0) == 6
    assert [x["ts"] for x in h.looks(1)] == [30.0, 40.0] == [x["ts"] for x in h.looks(2)]


def _racer(store: str, worker: int, start: Any, results: Any) -> None:
    with Ledger(store) as led:
        h = hist(led)
        start.wait(30)
        stored = sum(h.save_look(5, look(worker * 100 + k), marks="m", min_gap_s=30.0,
                                 max_looks=100) for k in range(20))
    results.put((worker, stored))


def test_racing_writers_store_one_look_per_gap(db: str) -> None:
    """Four processes, 20 tries each at once: the gap check and the insert are one statement
    in a serialised write, so exactly one look is stored."""
    Ledger(db).close()  # the schema first, so the racers only race on looks
    stored = run_workers(4, lambda w, start, results: (_racer, (db, w, start, results)))
    assert sum(stored.values()) == 1
    with Ledger(db) as led:
        assert len(hist(led).looks(5)) == 1


def test_an_older_ledger_gains_the_looks_table(bare_db: str) -> None:
    migrate(bare_db, target=3)  # before version 4 (looks)
    assert not raw(bare_db, "SELECT 1 FROM decisions")  # the store is there, without looks
    if bare_db.startswith("postgresql://"):
        migrate(bare_db)  # a PostgreSQL worker never migrates: the migrator does
    with Ledger(bare_db) as led:  # SQLite: the ledger migrates its file on open
        h = hist(led)
        assert h.save_look(1, look(0), marks="m", min_gap_s=1.0, max_looks=10, now=time.time())
        assert json.loads(json.dumps(h.looks(1)))[0]["i"] == 0

"""Several worker processes on one ledger file: exact totals under concurrent writes."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from ledger_support import (
    EXP,
    _concurrent_writer,
    arm_totals,
    dec,
    raw,
    raw_count,
    run_workers,
)

from fraud.store.writer import Ledger

# -- several worker processes ----------------------------------------------------------------------


def test_concurrent_processes_keep_exact_totals(db: str) -> None:
    workers, n = 3, 1500
    shared = [f"shared-{i}" for i in range(12)]
    with Ledger(db) as led:  # decisions every worker will race to label
        led.record([dec(rid, "model_b", flagged=i % 2 == 0) for i, rid in enumerate(shared)])

    outcomes = run_workers(workers, lambda w, start, results: (
        _concurrent_writer, (str(db), w, n, list(shared), start, results)))

    assert raw_count(db) == workers * n + len(shared)
    with Ledger(db) as led:
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
        recount = {arm: (n_, f) for arm, n_, f in raw(
            db, "SELECT arm, COUNT(*), SUM(is_fraud) FROM decisions GROUP BY arm")}
        writers = [r[0].split("-")[0] for r in raw(
            db, "SELECT request_id FROM decisions WHERE request_id LIKE 'w%' ORDER BY id")]
        assert recount == {"model_a": (a.decisions, a.flagged),
                           "model_b": (b.decisions, b.flagged)}
        # The workers really wrote concurrently: their batches interleave in the file.
        switches = sum(1 for x, y in pairwise(writers) if x != y)
        assert switches >= workers, switches  # run one after the other: workers - 1

"""The writer's fast path (fraud/store/rows.py) on both backends: decisions marked counted,
aggregates added per user; an earlier release's writer (the trigger) on the same store; a
trigger definition of an earlier release replaced by the migration that changed it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ledger_support import EXP, counts, dec, raw

from fraud.store import sql
from fraud.store.migrate import migrate
from fraud.store.rows import to_row, user_counts
from fraud.store.writer import Ledger


def _old_writer(store: str, rows: list[tuple]) -> None:
    """Insert as a writer of the previous release does: no `counted` mark, the trigger counts."""
    if store.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(store) as conn, conn.cursor() as cur:
            cur.executemany(sql.INSERT_DECISION.replace("?", "%s"), rows)
        return
    with sqlite3.connect(store) as conn:
        conn.executemany(sql.INSERT_DECISION, rows)
    conn.close()


def test_user_counts_sum_per_user_and_sort() -> None:
    rows = [to_row(dec(f"r{i}", arm, flagged=flag, user=user))
            for i, (arm, flag, user) in enumerate([("model_a", True, "bob"),
                                                   ("model_a", False, "bob"),
                                                   ("model_b", True, "ann"),
                                                   ("model_a", True, "ann")])]
    assert user_counts(rows) == [(EXP, 0, "model_a", "ann", 1, 1),
                                 (EXP, 0, "model_a", "bob", 2, 1),
                                 (EXP, 0, "model_b", "ann", 1, 1)]


def test_fast_path_and_an_earlier_writer_share_a_store_exactly(ledger: Ledger, db: str) -> None:
    users = [f"u{i % 7}" for i in range(60)]
    new = [dec(f"new{i}", ("model_a", "model_b")[i % 2], flagged=i % 3 == 0, user=u)
           for i, u in enumerate(users)]
    old = [dec(f"old{i}", ("model_a", "model_b")[i % 2], flagged=i % 4 == 0, user=u)
           for i, u in enumerate(users[:40])]
    ledger.record(new[:30]).result()
    _old_writer(db, [to_row(d) for d in old])
    ledger.record_many([new[30:45], new[45:]])[1].result()
    assert raw(db, "SELECT counted, COUNT(*) FROM decisions GROUP BY counted ORDER BY counted") \
        == [(0, 40), (1, 60)]
    per_user = raw(db, "SELECT arm, user_id, decisions, flagged FROM user_stats ORDER BY 1, 2")
    truth = raw(db, "SELECT arm, user_id, COUNT(*), SUM(is_fraud) FROM decisions "
                    "GROUP BY arm, user_id ORDER BY 1, 2")
    assert [tuple(int(v) if not isinstance(v, str) else v for v in r) for r in per_user] \
        == [tuple(int(v) if not isinstance(v, str) else v for v in r) for r in truth]
    running, scanned = ledger.aggregates(EXP), ledger.aggregates(EXP, scan=True)
    for arm in ("model_a", "model_b"):
        assert counts(running[0][arm]) == counts(scanned[0][arm])
    assert sum(counts(running[0][a])[1] for a in ("model_a", "model_b")) == 100


def test_an_earlier_trigger_definition_is_replaced_by_its_migration(sqlite_db: Path) -> None:
    migrate(sqlite_db, target=2)  # as releases before `counted` left it: the trigger counts all
    with sqlite3.connect(sqlite_db) as conn:
        text = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'decisions_count'"
                            ).fetchone()[0]
    conn.close()
    assert "WHEN" not in text
    with Ledger(sqlite_db) as led:  # migrates the file to version 3 and on
        led.record([dec("x1", user="ann"), dec("x2", user="ann", flagged=True)]).result()
        assert counts(led.aggregates(EXP)[0]["model_a"])[:3] == (1, 2, 1)  # not 4, 2
    with sqlite3.connect(sqlite_db) as conn:
        text = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'decisions_count'"
                            ).fetchone()[0]
    conn.close()
    assert "WHEN NEW.counted = 0" in text

"""What the ledger costs in disk: bytes per decision on each backend, and a day at 200 req/s.

    python -m loadtests.bench.disk [--rows 100000] [--postgres postgresql://...]

Records `rows` decisions (groups of 10, as concurrent requests arrive, 20,000 users, one
label per 50 decisions) into a fresh SQLite file and, if a URL is given, a fresh PostgreSQL
database (it must be empty), then measures what the store grew by (SQLite: the file after a
WAL checkpoint; PostgreSQL: the decision and label tables with their indexes, after VACUUM;
the server's WAL is not counted: it is recycled at checkpoints).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from fraud.store.migrate import migrate
from fraud.store.records import Decision
from fraud.store.writer import Ledger

PER_DAY = 200 * 86_400  # decisions a day at 200 req/s


def fill(store: str, rows: int) -> None:
    with Ledger(store) as led:
        now = time.time()
        ids = []
        for start in range(0, rows, 10):
            group = [Decision(str(uuid.uuid4()), now + i / 1000, f"user-{i % 20_000}",
                              "model_a" if i % 2 else "model_b", "fraud_rf:abcdef123456",
                              0.1 + (i % 7) / 10, i % 11 == 0, 4.2, "predict", 1, 0)
                     for i in range(start, min(start + 10, rows))]
            led.record(group)
            ids.extend(d.request_id for d in group[::5])
            if len(ids) >= 2000:
                led.flush()
                for rid in ids[::10]:
                    led.label(rid, False, wait=0)
                ids.clear()
        led.flush()


def sqlite_bytes(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def postgres_bytes(url: str) -> int:
    """The decision and label tables with their indexes, after a VACUUM (the per-user and
    per-arm rows are updated in place, so their dead versions are reclaimed and reused; what
    grows with traffic is these two tables)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM")
        return int(conn.execute("SELECT pg_total_relation_size('decisions')"
                                " + pg_total_relation_size('labels')").fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.disk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", default=None, help="an empty database's URL")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        Ledger(path).close()
        empty = sqlite_bytes(path)
        fill(str(path), args.rows)
        results["sqlite"] = sqlite_bytes(path) - empty
    if args.postgres:
        migrate(args.postgres)  # a PostgreSQL worker never runs DDL
        Ledger(args.postgres).close()
        empty = postgres_bytes(args.postgres)
        fill(args.postgres, args.rows)
        results["postgresql"] = postgres_bytes(args.postgres) - empty
    print(f"{args.rows} decisions, {args.rows // 50} labels, 20,000 users")
    for name, grown in results.items():
        per = grown / args.rows
        print(f"{name:>10}: {per:6.0f} bytes/decision, {per * PER_DAY / 1e9:5.1f} GB a day at "
              f"200 req/s, {per * PER_DAY * 90 / 1e9:6.0f} GB at the 90-day default retention")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

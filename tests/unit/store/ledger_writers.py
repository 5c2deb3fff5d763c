"""PostgreSQL ledger commits per second with 1, 2 and 4 writer processes on one server (a
measurement, not a test):

    .venv/bin/python tests/unit/store/ledger_writers.py [--writers 1 2 4] [--seconds 8]
        [--rows 20] [--clients 4] [--postgres postgresql://...]

Each writer process is a worker's Ledger with `clients` threads recording requests of `rows`
decisions (users from a pool of 5,000), each waiting for its commit as a request does. Every
count is checked afterwards (decisions stored = decisions acknowledged, and the per-user and
per-arm aggregates agree with them). Prints one JSON line per number of writers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/ (the server helper)

from fraud.store.migrate import migrate
from fraud.store.records import Decision
from fraud.store.writer import Ledger

SPAWN = mp.get_context("spawn")


def writer(url: str, w: int, clients: int, rows: int, seconds: float, start: Any,
           results: Any) -> None:
    rng = random.Random(w)
    pool = [f"user_{i:05d}" for i in range(5_000)]
    done = [0]
    lock = threading.Lock()
    with Ledger(url, flush_interval=0.005) as ledger:
        start.wait(60)
        began = time.perf_counter()

        def client() -> None:
            while time.perf_counter() - began < seconds:
                now = time.time()
                batch = [Decision(uuid.uuid4().hex, now, rng.choice(pool),
                                  rng.choice(("model_a", "model_b")), "bench:1", 0.3,
                                  rng.random() < 0.05, 1.0, "predict", 1, 0)
                         for _ in range(rows)]
                ledger.record(batch).result()
                with lock:
                    done[0] += rows

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        results.put((w, (done[0], ledger.commits, elapsed)))


def run(url: str, writers: int, clients: int, rows: int, seconds: float) -> dict[str, Any]:
    import psycopg

    migrate(url)
    start, results = SPAWN.Barrier(writers, timeout=120), SPAWN.Queue()
    procs = [SPAWN.Process(target=writer, args=(url, w, clients, rows, seconds, start, results))
             for w in range(writers)]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join(60)
    acknowledged = sum(n for n, _, _ in out.values())
    commits = sum(c for _, c, _ in out.values())
    elapsed = max(e for _, _, e in out.values())
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        per_user = conn.execute("SELECT SUM(decisions) FROM user_stats").fetchone()[0]
        per_arm = conn.execute("SELECT SUM(decisions), SUM(users) FROM arm_moments").fetchone()
        users = conn.execute("SELECT COUNT(*) FROM user_stats").fetchone()[0]
    exact = stored == acknowledged == per_user == per_arm[0] and per_arm[1] == users
    return {"writers": writers, "clients_per_writer": clients, "rows_per_request": rows,
            "commits_per_s": round(commits / elapsed), "rows_per_s": round(acknowledged / elapsed),
            "rows": acknowledged, "exact": exact}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--postgres", default=None, help="a server's URL (a database per run "
                        "is made on it) ; default: a throwaway server, as the tests start")
    args = parser.parse_args()
    server = None
    if args.postgres is None:
        from postgres import PostgresServer

        server = PostgresServer()
    try:
        for n in args.writers:
            if server is not None:
                url = server.create_database()
            else:
                import psycopg

                url = args.postgres.rsplit("/", 1)[0] + f"/w{uuid.uuid4().hex[:10]}"
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {url.rsplit('/', 1)[1]}")
            print(json.dumps(run(url, n, args.clients, args.rows, args.seconds)), flush=True)
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()

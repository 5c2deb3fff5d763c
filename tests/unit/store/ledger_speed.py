"""Decisions committed per second by the ledger, on both backends (a measurement, not a test):

    .venv/bin/python tests/unit/store/ledger_speed.py [--seconds 8] [--rows 500]
        [--postgres postgresql://...]   (default: a throwaway server, as the tests start)

Per backend, two loads of `rows`-decision requests (users from a pool of 5,000, requests built
before the clock starts): one client at a time, each waiting for its commit (a /predict_batch
after another), and 8 clients at once (the group commit carries several requests). Prints one
JSON line per backend and load: rows committed per second of wall time, and per CPU second
(this process, plus the PostgreSQL server's processes): on a machine shared with other work
the second is the steadier figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/ (the server helper)

from fraud.store.migrate import migrate
from fraud.store.records import Decision
from fraud.store.writer import Ledger


def requests(n: int, rows: int, seed: int) -> list[list[Decision]]:
    rng = random.Random(seed)
    pool = [f"lt_user_{i:05d}" for i in range(5_000)]
    now = time.time()
    return [[Decision(uuid.uuid4().hex, now, rng.choice(pool), rng.choice(("model_a", "model_b")),
                      "bench:1", 0.3, rng.random() < 0.05, 1.0, "batch", 1, 0, 10.0, None, None)
             for _ in range(rows)] for _ in range(n)]


def cpu_seconds(server_pid: int | None) -> float:
    """CPU used so far by this process and, if given, a server and its children."""
    import psutil

    total = sum(psutil.Process().cpu_times()[:2])
    if server_pid:
        server = psutil.Process(server_pid)
        for proc in [server, *server.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(proc.cpu_times()[:2])
    return total


def load(ledger: Ledger, clients: int, rows: int, seconds: float,
         server_pid: int | None) -> tuple[float, float]:
    """Rows committed per second (wall, CPU) with `clients` threads each recording one
    request at a time."""
    batches = requests(max(8, int(seconds * 40_000 / rows)), rows, seed=clients)
    ledger.record(batches.pop()).result()  # warm
    lock, done = threading.Lock(), [0]
    cpu = cpu_seconds(server_pid)
    start = time.perf_counter()

    def client() -> None:
        while time.perf_counter() - start < seconds:
            with lock:
                if not batches:
                    return
                batch = batches.pop()
            ledger.record(batch).result()
            with lock:
                done[0] += len(batch)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return done[0] / wall, done[0] / (cpu_seconds(server_pid) - cpu)


def measure(name: str, store: str, rows: int, seconds: float,
            server_pid: int | None = None) -> None:
    for clients in (1, 8):
        with Ledger(store) as ledger:
            rate, per_cpu = load(ledger, clients, rows, seconds, server_pid)
            commits = ledger.commits
        print(json.dumps({"backend": name, "clients": clients, "rows_per_request": rows,
                          "rows_per_s": round(rate), "rows_per_cpu_s": round(per_cpu),
                          "commits": commits}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--postgres", default=None, help="an empty database's URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", str(Path(tmp) / "ledger.sqlite"), args.rows, args.seconds)
    if args.postgres:
        migrate(args.postgres)
        measure("postgresql", args.postgres, args.rows, args.seconds)
        return
    from postgres import PostgresServer

    server = PostgresServer()
    try:
        url = server.create_database()
        migrate(url)
        pid = int((server.data / "postmaster.pid").read_text().split()[0])
        measure("postgresql", url, args.rows, args.seconds, pid)
    finally:
        server.close()


if __name__ == "__main__":
    main()

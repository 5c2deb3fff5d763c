"""A worker process of the contention tests (a spawn target, importable by module name): client
threads recording bulk batches while another thread keeps the interpreter busy, as an API
worker's request handling does (its writer thread then holds the GIL, and the file's write
lock, for less of the time it needs)."""

from __future__ import annotations

import threading
from typing import Any

from ledger_support import dec

from fraud.store.records import LedgerUnavailable
from fraud.store.writer import Ledger


def _bulk_hammer(path: str, worker: int, clients: int, batches: int, rows: int, start: Any,
                 results: Any) -> None:
    led = Ledger(path, busy_timeout=0.2)  # SQLite waits in short slices; the ledger retries
    failures: list[str] = []
    stop = threading.Event()
    problems: set[str] = set()

    def busy() -> None:
        while not stop.is_set():
            sum(i * i for i in range(5000))
            if led.problem:
                problems.add(led.problem)

    def client(c: int) -> None:
        for b in range(batches):
            batch = [dec(f"w{worker}-{c}-{b}-{i}", user=f"user-{i % 97}",
                         flagged=i % 7 == 0, source="batch") for i in range(rows)]
            try:
                led.record(batch).result(timeout=120)
            except LedgerUnavailable as exc:
                failures.append(str(exc))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    burner = threading.Thread(target=busy, daemon=True)
    start.wait(30)
    burner.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    burner.join()
    led.close()
    results.put((worker, (failures[:3], len(failures), led.write_failures, led.lock_timeouts,
                          sorted(problems))))


def _resender(path: str, worker: int, ids: list[str], start: Any, results: Any) -> None:
    """Record the same request ids as the other workers (a client resending to another
    replica), in an order of its own, in batches of 25, each waiting for its commit."""
    import random

    order = list(ids)
    random.Random(worker).shuffle(order)
    with Ledger(path, flush_interval=0.002) as led:
        start.wait(30)
        for i in range(0, len(order), 25):
            led.record([dec(rid, user=f"user-{int(rid.split('-')[1]) % 13}",
                            flagged=int(rid.split('-')[1]) % 3 == 0)
                        for rid in order[i:i + 25]]).result(timeout=60)
        results.put((worker, (led.commits, led.write_failures, led.lock_timeouts)))

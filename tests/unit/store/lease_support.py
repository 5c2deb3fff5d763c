"""A worker process of the exploration-budget tests (a spawn target, importable by module name):
leases a day's budget in chunks until the ledger grants nothing more."""

from __future__ import annotations

import time
from typing import Any

from fraud.store.writer import Ledger


def _leaser(store: str, worker: int, want: float, budget: float, start: Any,
            results: Any) -> None:
    granted: list[float] = []
    with Ledger(store) as led:
        start.wait()
        while True:
            g = led.lease_exploration("2026-03-01", want, budget)
            if g <= 0:
                break
            granted.append(g)
            time.sleep(0.02)  # as a worker does between leases: the others get their turns
    results.put((worker, granted))

"""One serving process's settings and runtime policy: the environment's switches, one OpenMP
thread, garbage collection off the request path, and refusing to start on a bad setup.

Nothing here loads numpy or scikit-learn (fraud.config, which does through scipy, is imported
inside `ledger_store`): service.py imports this module first and applies `thread_defaults`
before anything reads OMP_NUM_THREADS.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
OPENMP_THREADS = "1"
GC_THRESHOLD = (50_000, 20, 20)
FREEZE_AGAIN_AFTER_S = 15.0  # by then the server has finished starting


def thread_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """What to add to the environment before scikit-learn loads its OpenMP runtime: one OpenMP
    thread per process, unless the environment chose already.

    The boosting model's predict otherwise spins a thread per core ~300 times per call, and
    when the other core is busy the router burns its CPU waiting (measured: peak 47 -> ~220
    requests/s).
    """
    return {} if "OMP_NUM_THREADS" in environ else {"OMP_NUM_THREADS": OPENMP_THREADS}


def tune_gc() -> threading.Timer:
    """Keep full garbage collections off the request path.

    Measured: with CPython's defaults a full collection ran every few seconds under load and
    walked the loaded models and BentoML's app, stalling every request in flight 40-110 ms
    (p99 at 100 req/s ~110-125 ms against p95 ~9 ms). Objects alive at start-up are frozen
    (now, and again once the server has finished starting), and collections run less often.
    Returns the timer of the second freeze.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    later = threading.Timer(FREEZE_AGAIN_AFTER_S, gc.freeze)
    later.daemon = True
    later.start()
    return later


def or_exit(make: Callable[[], T], *errors: type[BaseException]) -> T:
    """make(), or, when it raises one of `errors`, one line `fraudserve: <why>` on stderr and
    exit status 2: a service whose models or keys are wrong must not start."""
    try:
        return make()
    except errors as exc:
        print(f"fraudserve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def ledger_store() -> str:
    """FRAUDSERVE_LEDGER (a path, sqlite:/// or postgresql:// URL), else data/ledger.sqlite in
    the project."""
    from fraud.config import PROJECT_ROOT  # here, not above: see the module's docstring

    env = os.environ.get("FRAUDSERVE_LEDGER")
    return env or str(PROJECT_ROOT / "data" / "ledger.sqlite")


def checked_ledger_store() -> str:
    """`ledger_store()`, refused (fraud.store.guards.SharedLedgerRequired, a RuntimeError) when
    FRAUDSERVE_REQUIRE_SHARED_LEDGER=1 and it is a SQLite file: several replicas would each
    keep their own ledger."""
    from fraud.store.guards import require_shared_ledger  # here, not above: see the docstring

    store = ledger_store()
    require_shared_ledger(store)
    return store


def batching_enabled() -> bool:
    """FRAUDSERVE_BATCHING=1 sends coalesced batches through the router's adaptive batching
    (`score`); the default sends them to `score_bulk`: equal within noise with 1 and 2 API
    workers, faster with 4 (docs/performance.md, "When adaptive batching pays")."""
    return os.environ.get("FRAUDSERVE_BATCHING", "0") == "1"


def coalescing_enabled() -> bool:
    """FRAUDSERVE_COALESCE=0 sends every /predict alone to the router (benchmarks compare)."""
    return os.environ.get("FRAUDSERVE_COALESCE", "1") != "0"


def noop_enabled() -> bool:
    """FRAUDSERVE_NOOP=1 adds POST /noop (validation only: the framework's floor), which `make
    bench` sets; BentoML collects APIs when the class is defined, so without it there is no
    route at all."""
    return os.environ.get("FRAUDSERVE_NOOP") == "1"

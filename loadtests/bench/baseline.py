"""The in-process ceiling: both arms' models scoring one /predict_batch body, no server.

Both arms' models come from the BentoML store (`bentoml.sklearn.load_model`); each row is
scored by its arm's model, as the router does, single-threaded (BLAS and OpenMP limited to one
thread: the figure is per core, and stays meaningful when other processes hold the other core).
Also 1-row latency per model, and the ledger alone: decisions committed per second, in
bulk-sized requests, to a fresh SQLite ledger (every /predict_batch row is committed before the
answer, so this too is a ceiling for bulk scoring).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class RawModel:
    """In-process predict_proba figures of the two arms' models, as the router runs them."""

    rows_per_s: float
    rows: int
    one_row_ms: dict[str, float]
    ledger_rows_per_s: float | None = None  # committed, in requests of `rows` decisions


def ledger_baseline(rows: int, seconds: float, users: int = 5_000) -> float | None:
    """Decisions committed per second to a fresh SQLite ledger, one request of `rows` at a
    time (each waits for its commit, as a /predict_batch does), users from a pool."""
    import random
    import tempfile
    from pathlib import Path

    from fraud.experiment.decisions import new_request_id
    from fraud.store.records import Decision
    from fraud.store.writer import Ledger

    rng = random.Random(3)
    pool = [f"lt_user_{i:05d}" for i in range(users)]
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "ledger.sqlite") as ledger:
        def request() -> list[Decision]:
            now = time.time()
            return [Decision(new_request_id(), now, rng.choice(pool),
                             rng.choice(("model_a", "model_b")), "bench:1", 0.3,
                             rng.random() < 0.05, 1.0, "batch", 1, 0, 10.0, None, None)
                    for _ in range(rows)]
        ledger.record(request()).result()  # warm
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            ledger.record(request()).result()
            done += rows
        return done / (time.perf_counter() - start)


@dataclass
class RawScoring:
    """Both arms' models and one /predict_batch body's rows, scored as the router does: each
    row by its arm's model, one core."""

    models: dict[str, Any]  # arm -> its estimator
    x: np.ndarray
    arm_of: np.ndarray      # per row, its arm's index in `models`

    def score(self) -> None:
        out = np.empty(len(self.x))
        for index, model in enumerate(self.models.values()):
            mask = self.arm_of == index
            if mask.any():
                out[mask] = model.predict_proba(self.x[mask])[:, 1]

    def rows_per_s(self, seconds: float) -> float:
        """predict_proba rows/s over `seconds` (after one warm call)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # one core, as the router runs (OMP_NUM_THREADS=1)
            self.score()
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                self.score()
                done += len(self.x)
            return done / (time.perf_counter() - start)


def raw_scoring(body: bytes) -> RawScoring | None:
    """The body's rows and both arms' models from the BentoML store; None (said on stderr)
    when they cannot be loaded. The bench's bulk pairs measure it after each /predict_batch
    loop."""
    try:
        import bentoml

        from fraud.assignment import assign
        from fraud.config import load_ab_config
        from fraud.schema import ARMS, Transaction, to_matrix
        from fraud.serving.models import resolve_arms
    except ImportError as exc:  # pragma: no cover - the venv has them
        print(f"bench: no raw model baseline ({exc})", file=sys.stderr)
        return None
    cfg = load_ab_config()
    try:
        arms = resolve_arms(cfg)
    except Exception as exc:
        print(f"bench: no raw model baseline: {exc}", file=sys.stderr)
        return None
    txs = [Transaction(**t) for t in json.loads(body)["transactions"]]
    return RawScoring(
        {a: bentoml.sklearn.load_model(arms[a].tag) for a in ARMS}, to_matrix(txs),
        np.array([ARMS.index(assign(t.user_id, cfg.salt, cfg.challenger_share)) for t in txs]))


def raw_model_baseline(body: bytes, seconds: float) -> RawModel | None:
    """Score the rows of one /predict_batch body as the router does (each arm its rows):
    rows/s, each model's 1-row latency, and the ledger alone."""
    raw = raw_scoring(body)
    if raw is None:
        return None
    from threadpoolctl import threadpool_limits

    rate, x = raw.rows_per_s(seconds), raw.x
    one_row: dict[str, float] = {}
    with threadpool_limits(limits=1):
        for arm, model in raw.models.items():
            times = []
            for i in range(100):
                t0 = time.perf_counter()
                model.predict_proba(x[i % len(x): i % len(x) + 1])
                times.append(time.perf_counter() - t0)
            one_row[arm] = 1000 * float(np.median(times))
    return RawModel(rows_per_s=rate, rows=len(x), one_row_ms=one_row,
                    ledger_rows_per_s=ledger_baseline(len(x), seconds))

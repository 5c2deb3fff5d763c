"""`python -m loadtests.bench.explain`: the cost of one explanation against one predict call.

Trains both models of configs/training.yaml (or takes fitted estimators), then times, on the
same rows in the same process: TreeExplainer.explain on one row, the serving scorer
(fraud.serving.fastpredict) on one row, and scikit-learn's predict_proba on one row. Prints each
time and the ratios; nothing is asserted (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fraud.explain import TreeExplainer
from fraud.serving.fastpredict import scorer


def _per_call(fn: Callable[[np.ndarray], Any], rows: np.ndarray, repeats: int) -> float:
    """Median over `repeats` passes of the mean seconds per call over `rows` (one row a call)."""
    fn(rows[0])  # warm-up
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for row in rows:
            fn(row)
        passes.append((time.perf_counter() - started) / len(rows))
    return float(np.median(passes))


def benchmark(est: Any, rows: np.ndarray, repeats: int = 5) -> dict[str, float]:
    """Seconds per call of explain, the serving scorer and predict_proba, on one row each."""
    started = time.perf_counter()
    explainer = TreeExplainer(est)
    compile_s = time.perf_counter() - started
    fast = scorer(est)
    out = {
        "compile_s": compile_s,
        "leaves": float(len(explainer.table.value)),
        "explain_s": _per_call(explainer.explain, rows, repeats),
        "predict_s": _per_call(lambda r: fast(r[None, :]), rows, repeats),
        "sklearn_s": _per_call(lambda r: est.predict_proba(r[None, :]), rows, repeats),
    }
    out["ratio_predict"] = out["explain_s"] / out["predict_s"]
    out["ratio_sklearn"] = out["explain_s"] / out["sklearn_s"]
    return out


def print_benchmark(name: str, figures: dict[str, float]) -> None:
    """One line per model: times in ms and the ratios against one predict call."""
    f = figures
    print(f"{name:<10} leaves {int(f['leaves']):>6}  compile {f['compile_s'] * 1e3:7.1f} ms  "
          f"explain {f['explain_s'] * 1e3:6.2f} ms  predict (serving) "
          f"{f['predict_s'] * 1e3:6.3f} ms  predict_proba {f['sklearn_s'] * 1e3:6.3f} ms  "
          f"ratio {f['ratio_predict']:5.1f}x serving, {f['ratio_sklearn']:4.2f}x predict_proba")


def main(argv: list[str] | None = None) -> int:
    from fraud.config import load_training_config
    from fraud.schema import FEATURE_NAMES, LABEL
    from training.data import load_splits
    from training.train import build_estimator

    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.explain", description=__doc__)
    parser.add_argument("--rows", type=int, default=None,
                        help="training rows (default: configs/training.yaml's n_rows)")
    parser.add_argument("--calls", type=int, default=200, help="rows explained per pass")
    parser.add_argument("--repeats", type=int, default=5, help="passes; the median is shown")
    args = parser.parse_args(argv)
    cfg = load_training_config()
    if args.rows is not None:
        cfg.data.generator.n_rows = args.rows
    splits = load_splits(cfg.data)
    X = splits.train[list(FEATURE_NAMES)].to_numpy(np.float64)
    rows = splits.test[list(FEATURE_NAMES)].to_numpy(np.float64)[: args.calls]
    print(f"training rows {len(X)}, {len(rows)} test rows explained per pass, "
          f"median of {args.repeats} passes")
    for spec in (cfg.champion, cfg.challenger):
        est = build_estimator(spec).fit(X, splits.train[LABEL].to_numpy())
        print_benchmark(spec.name, benchmark(est, rows, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

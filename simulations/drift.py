"""`python -m simulations.drift`: false-alarm and detection rates of the drift verdicts.

The reference is what training stores: `build_reference` of the training split of
configs/training.yaml. Live traffic is fresh draws of the same generator (other seeds) at
each `shift`, cut into disjoint windows of `DriftSettings().window` rows; every window is
judged by `fraud.drift.compare`, the code GET /drift runs. At shift 0 every alarm is false.
The printed table is the one docs/explain-and-drift.md quotes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np
from scipy.stats import beta

from fraud.config import DriftSettings
from fraud.drift import build_reference, compare
from fraud.schema import FEATURE_NAMES


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a rate seen k times in n trials."""
    return 1.0 if k >= n else float(beta.ppf(confidence, k + 1, n - k))


def flag_counts(reference: dict, X: np.ndarray, settings: DriftSettings) -> tuple[np.ndarray, int]:
    """Per feature: windows judged drifting; and windows with any feature drifting."""
    verdicts = []
    for start in range(0, len(X) - settings.window + 1, settings.window):
        out = compare(reference, X[start:start + settings.window], settings)
        verdicts.append([out["features"][n]["drift"] for n in FEATURE_NAMES])
    v = np.array(verdicts, dtype=bool)
    return v.sum(axis=0), int(v.any(axis=1).sum())


def main(argv: list[str] | None = None) -> int:
    from fraud.config import load_training_config
    from training.data import generate, load_splits

    parser = argparse.ArgumentParser(prog="python -m simulations.drift",
                                     description=__doc__)
    parser.add_argument("--null-windows", type=int, default=5000,
                        help="windows of unshifted traffic (the false-alarm rate)")
    parser.add_argument("--windows", type=int, default=200, help="windows per shifted level")
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--window", type=int, default=None, help="rows per window")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)
    settings = DriftSettings()
    if args.window:
        settings = replace(settings, window=args.window, min_rows=min(settings.min_rows,
                                                                      args.window))
    cfg = load_training_config()
    train = load_splits(cfg.data).train[list(FEATURE_NAMES)].to_numpy(np.float64)
    reference = build_reference(train)
    ks_crit = settings.ks_critical(settings.window, len(train))
    print(f"reference: training split of configs/training.yaml, {len(train)} rows; window "
          f"{settings.window} rows; alpha {settings.alpha} per test; psi_threshold "
          f"{settings.psi_threshold}; KS critical {ks_crit:.4f}")
    header = "| shift | windows | any feature | " + " | ".join(FEATURE_NAMES) + " |"
    print(header)
    print("|" + "---|" * (3 + len(FEATURE_NAMES)))
    for i, shift in enumerate([0.0, *args.shifts]):
        n = args.null_windows if shift == 0 else args.windows
        gen = cfg.data.generator.model_copy(update={"n_rows": n * settings.window,
                                                     "shift": shift})
        X = generate(gen, args.seed + i)[list(FEATURE_NAMES)].to_numpy(np.float64)
        per_feature, any_feature = flag_counts(reference, X, settings)
        cells = " | ".join(f"{100 * k / n:.1f}%" for k in per_feature)
        print(f"| {shift:g} | {n} | {100 * any_feature / n:.2f}% | {cells} |")
        if shift == 0:
            upper = clopper_pearson_upper(any_feature, n)
            null_line = (f"false alarms (shift 0): {any_feature} of {n} windows "
                         f"({100 * any_feature / n:.2f}%, 95% upper bound {100 * upper:.2f}%)")
    print(null_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m training`: train champion and challenger, log to MLflow, save to BentoML."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from fraud.config import DataConfig, load_training_config, mlflow_tracking_uri
from training.data import DataError, load_splits
from training.registry import log_to_mlflow, save_to_bentoml
from training.thresholds import check_rule
from training.train import TrainedModel, fit_one


def _table(rows: list[tuple[TrainedModel, str]]) -> str:
    head = (f"{'role':<11}{'bentoml tag':<36}{'thresh':>7}{'F1':>7}{'prec':>7}{'recall':>7}"
            f"{'ROC AUC':>9}{'PR AUC':>8}{'fit s':>7}")
    lines = [head, "-" * len(head)]
    for m, tag in rows:
        o = m.test["overall"]
        lines.append(f"{m.role:<11}{tag:<36}{m.threshold:>7.3f}{o['f1']:>7.3f}"
                     f"{o['precision']:>7.3f}{o['recall']:>7.3f}{o['roc_auc']:>9.4f}"
                     f"{o['average_precision']:>8.4f}{m.fit_seconds:>7.1f}")
    return "\n".join(lines)


def with_file(data: DataConfig, path: Path) -> DataConfig:
    """`data` reading `path` instead: csv, or parquet for .parquet / .pq files."""
    source = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    return DataConfig.model_validate({**data.model_dump(), "source": source,
                                      "path": str(path), "csv_path": None})


def _served_models_present() -> bool:
    from fraud.config import load_ab_config
    from fraud.serving.models import ModelMismatch, ModelsMissing, resolve_arms

    try:
        resolve_arms(load_ab_config())
    except (ModelsMissing, ModelMismatch):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the champion and challenger from configs/training.yaml, log one "
                    "MLflow run each (registered with aliases champion/challenger), and save "
                    "both to the BentoML model store (BENTOML_HOME). Prints test-split metrics.",
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="training config (default: configs/training.yaml)")
    parser.add_argument("--rows", type=int, default=None,
                        help="override data.generator.n_rows (generator data only)")
    parser.add_argument("--data", type=Path, default=None,
                        help="train on this CSV or Parquet file (data.source and data.path "
                             "from its suffix; columns, label and splits from the config)")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when the store already holds the models that "
                             "configs/ab.yaml serves (used by make serve / make test)")
    args = parser.parse_args(argv)
    if args.if_missing and _served_models_present():
        print("training: the served models are already in the BentoML store; skipping "
              "(run `make train` to retrain)")
        return 0
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")

    started = time.perf_counter()
    try:
        cfg = load_training_config(args.config)
        if args.rows is not None:
            cfg.data.generator.n_rows = args.rows
        if args.data is not None:
            cfg.data = with_file(cfg.data, args.data)
        check_rule(cfg.threshold)
        splits = load_splits(cfg.data)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"training: {exc}", file=sys.stderr)
        return 2
    print(f"data: {cfg.data.source}, {cfg.data.split} splits {splits.sizes()}, "
          f"fraud rate {splits.train['is_fraud'].mean():.4f}")
    for name, period in (splits.ranges() or {}).items():
        print(f"  {name}: {period['from']} to {period['to']}")
    if splits.dropped:
        print(f"  {splits.dropped} rows left out: a card's rows after its own period")
    rows = []
    for role, spec in (("champion", cfg.champion), ("challenger", cfg.challenger)):
        model = fit_one(role, spec, splits, cfg.threshold)
        run_id, version = log_to_mlflow(model, cfg, splits)
        saved = save_to_bentoml(model, cfg, splits, run_id, version)
        rows.append((model, str(saved.tag)))
    print(_table(rows))
    print(f"MLflow: {mlflow_tracking_uri()} (registered model {cfg.registered_model_name!r}, "
          f"aliases champion/challenger)")
    print(f"BentoML store: {os.environ.get('BENTOML_HOME', '~/bentoml')}")
    print(f"training took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

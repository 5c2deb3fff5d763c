"""Data: where the training rows come from (the built-in generator, or a CSV / Parquet file)
and their leak-proof splits. Everything fails before training with one clear DataError."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraud.config import DataConfig
from fraud.schema import FEATURE_NAMES, LABEL
from training.errors import DataError
from training.files import load_file
from training.generator import SCENARIOS, generate
from training.splits import Splits, frame_hash, row_hashes, split

__all__ = ["SCENARIOS", "DataError", "Splits", "frame_hash", "generate", "load", "load_csv",
           "load_splits", "row_hashes", "split"]

# The features the built-in generator makes: the seed's seven (configs/features.yaml's default).
GENERATED = ("amount", "hour", "merchant_risk", "card_age_days", "distance_km",
             "num_recent_txns", "is_international")


def load_csv(path: Path | str, label_column: str = LABEL) -> pd.DataFrame:
    """Read a CSV file with one column per feature (same names) and the label."""
    return load_file(DataConfig(source="csv", path=str(path), label_column=label_column))


def load(cfg: DataConfig) -> pd.DataFrame:
    """The full data set named by the config."""
    if cfg.source in ("csv", "parquet"):
        return load_file(cfg)
    if FEATURE_NAMES != GENERATED:
        raise DataError("the built-in generator makes the seed's seven features only; "
                        f"configs/features.yaml defines {list(FEATURE_NAMES)}: set "
                        "data.source to csv or parquet (docs/your-data.md)")
    if cfg.split == "time" or cfg.group_by_entity:
        raise DataError("the built-in generator has no timestamps or card ids: use "
                        "split: stratified without group_by_entity, or a csv/parquet source")
    return generate(cfg.generator, cfg.seed)


def load_splits(cfg: DataConfig) -> Splits:
    """Load and split; the same config (and file) always yields the same splits."""
    return split(load(cfg), cfg)

"""Leak-proof splits: stratified at random, or by time; optionally grouped by card.

* stratified (the default): each row lands in one split at random, the fraud rate kept.
* time: train on the oldest rows, validate on the next, test on the newest. The periods are
  cut at timestamps, so rows sharing a timestamp share a split and no training row is from
  the validation or test period.
* grouped (`group_by_entity`): one card (entity) is never in two splits. At random, whole
  cards are dealt to the splits. By time, a card belongs to the period it first appears in,
  and its rows from later periods are dropped: kept in its own split they would put later
  rows in an earlier period; kept in theirs, the card would span two splits.

Every split must hold at least `min_fraud_per_split` fraud rows and some legit ones, or the
load stops before training with the split, its period and its counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraud.config import DataConfig
from fraud.schema import FEATURE_NAMES, LABEL
from training.errors import DataError

NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class Splits:
    """Disjoint train / validation / test frames and their content hashes."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    dropped: int = 0  # rows a grouped time split left out (a card's rows after its period)

    def hashes(self) -> dict[str, str]:
        return {name: frame_hash(getattr(self, name)) for name in NAMES}

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in NAMES}

    def ranges(self) -> dict[str, dict[str, str]] | None:
        """Each split's first and last timestamp (ISO 8601, UTC), when the data has them."""
        if "timestamp" not in self.train.columns:
            return None
        out = {}
        for name in NAMES:
            stamps = pd.to_datetime(getattr(self, name)["timestamp"], utc=True)
            out[name] = {"from": stamps.min().isoformat(), "to": stamps.max().isoformat()}
        return out


def frame_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the features and label, in order: identifies a split's exact content."""
    arr = np.ascontiguousarray(df[[*FEATURE_NAMES, LABEL]].to_numpy(dtype=np.float64))
    return hashlib.sha256(arr.tobytes()).hexdigest()


def row_hashes(df: pd.DataFrame) -> set[bytes]:
    """One digest per row (features + label), to prove two splits share no rows."""
    arr = np.ascontiguousarray(df[[*FEATURE_NAMES, LABEL]].to_numpy(dtype=np.float64))
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in arr}


def _stratified(df: pd.DataFrame, cfg: DataConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed + 1)
    labels = df[LABEL].to_numpy()
    assignment = np.empty(len(df), dtype=np.int8)
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_test = round(len(idx) * cfg.test_fraction)
        n_val = round(len(idx) * cfg.validation_fraction)
        assignment[idx[:n_test]] = 2
        assignment[idx[n_test:n_test + n_val]] = 1
        assignment[idx[n_test + n_val:]] = 0
    return assignment


def _by_entity(df: pd.DataFrame, cfg: DataConfig) -> np.ndarray:
    """Whole cards dealt at random: test first, then validation, until each has its share."""
    rng = np.random.default_rng(cfg.seed + 1)
    entities, inverse, counts = np.unique(df["entity"].to_numpy(dtype=str),
                                          return_inverse=True, return_counts=True)
    order = rng.permutation(len(entities))
    cumulative = np.cumsum(counts[order]) / len(df)
    of_entity = np.zeros(len(entities), dtype=np.int8)
    test_end = cfg.test_fraction
    val_end = cfg.test_fraction + cfg.validation_fraction
    of_entity[order[cumulative <= val_end]] = 1
    of_entity[order[cumulative <= test_end]] = 2
    return of_entity[inverse]


def time_cuts(stamps: np.ndarray, cfg: DataConfig) -> tuple[Any, Any]:
    """(validation start, test start): timestamps leaving each later split its share of rows."""
    ordered = np.sort(stamps)
    n = len(ordered)
    n_test = max(1, round(n * cfg.test_fraction))
    n_val = max(1, round(n * cfg.validation_fraction))
    return ordered[n - n_test - n_val], ordered[n - n_test]


def _by_time(df: pd.DataFrame, cfg: DataConfig) -> np.ndarray:
    """Periods by time; grouped, a card keeps the period it first appears in (-1: dropped)."""
    stamps = df["timestamp"].to_numpy(dtype="datetime64[ns]")
    val_start, test_start = time_cuts(stamps, cfg)
    period = np.where(stamps >= test_start, 2, np.where(stamps >= val_start, 1, 0))
    if not cfg.group_by_entity:
        return period.astype(np.int8)
    first = pd.Series(period).groupby(df["entity"].to_numpy()).transform("min").to_numpy()
    return np.where(period == first, period, -1).astype(np.int8)


def assign(df: pd.DataFrame, cfg: DataConfig) -> np.ndarray:
    """Each row's split: 0 train, 1 validation, 2 test, -1 left out (grouped by time)."""
    if cfg.split == "time":
        return _by_time(df, cfg)
    if cfg.group_by_entity:
        return _by_entity(df, cfg)
    return _stratified(df, cfg)


def split(df: pd.DataFrame, cfg: DataConfig) -> Splits:
    """Disjoint-by-construction splits: each row index lands in at most one split."""
    assignment = assign(df, cfg)
    frames = [df[assignment == k].reset_index(drop=True) for k in (0, 1, 2)]
    out = Splits(train=frames[0], validation=frames[1], test=frames[2],
                 dropped=int((assignment < 0).sum()))
    check_counts(out, cfg.min_fraud_per_split)
    return out


def check_counts(splits: Splits, min_fraud: int) -> None:
    """Each split needs `min_fraud` fraud rows and a legit one; else one message saying which."""
    ranges = splits.ranges() or {}
    for name in NAMES:
        frame = getattr(splits, name)
        fraud = int(frame[LABEL].sum())
        legit = len(frame) - fraud
        if fraud >= min_fraud and legit > 0:
            continue
        period = (f" ({ranges[name]['from']} to {ranges[name]['to']})"
                  if name in ranges and len(frame) else "")
        dropped = (f"; {splits.dropped} rows were left out because their card first "
                   "appears in an earlier period (long-lived cards leave later periods few "
                   "rows: try group_by_entity: false)" if splits.dropped else "")
        raise DataError(
            f"the {name} split{period} has {fraud} fraud and {legit} legit rows; it needs "
            f"at least {min_fraud} fraud rows (data.min_fraud_per_split) and some legit: "
            f"more data, or a larger share for that split{dropped}")

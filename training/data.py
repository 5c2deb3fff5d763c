"""Data: the built-in transaction generator, the CSV loader, and leak-proof splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.config import DataConfig, GeneratorConfig
from fraud.schema import FEATURE_NAMES, FEATURES_BY_NAME, LABEL

SCENARIOS = ("stealth", "new_card_burst", "risky_merchant_night", "foreign_far")


class DataError(ValueError):
    """Input data that cannot be used; the message names the column and the problem."""


def _legit(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    """Ordinary traffic: daytime, modest amounts, old cards, close to home."""
    day = rng.normal(14 + shift, 4.0, n)
    night = rng.uniform(0, 24, n)
    hour = np.where(rng.random(n) < 0.9, day, night)
    return {
        "amount": rng.lognormal(3.7 + 0.3 * shift, 1.0, n),
        "hour": np.mod(np.round(hour), 24),
        "merchant_risk": rng.beta(2.0 + shift, 7.0, n),
        "card_age_days": rng.gamma(1.6, 500.0 / (1 + shift), n),
        "distance_km": rng.lognormal(2.0 + 0.4 * shift, 1.3, n),
        "num_recent_txns": rng.poisson(1.5 + shift, n).astype(float),
        "is_international": (rng.random(n) < 0.06 + 0.04 * shift).astype(float),
    }


# Night for fraud purposes: late evening through early morning.
NIGHT_HOURS = np.array([22, 23, 0, 1, 2, 3, 4, 5], dtype=float)
# Chance that a fraud row of one scenario also carries each other scenario's signal (a stolen
# card is often new, used far away, at night, at a risky merchant, in a burst: fraud signals
# co-occur). Legit look-alikes carry exactly one scenario's signal (a traveller is far away on
# an old card; a night owl at a risky merchant has an ordinary pace), so a transaction with
# every risk factor at once is almost always fraud.
CO_OCCURRENCE = 0.35


def _signal(rng: np.random.Generator, name: str, n: int) -> dict[str, np.ndarray]:
    """The features one fraud scenario moves, amount included."""
    if name == "new_card_burst":
        return {"card_age_days": rng.gamma(1.2, 25.0, n),
                "num_recent_txns": rng.poisson(7.0, n).astype(float),
                "amount": rng.lognormal(4.6, 0.9, n)}
    if name == "risky_merchant_night":
        return {"merchant_risk": rng.beta(6.0, 2.0, n),
                "hour": rng.choice(NIGHT_HOURS, n),
                "amount": rng.lognormal(4.9, 1.0, n)}
    if name == "foreign_far":
        return {"is_international": (rng.random(n) < 0.85).astype(float),
                "distance_km": rng.lognormal(6.3, 0.9, n),
                "amount": rng.lognormal(4.4, 1.1, n)}
    return {}


def _scenario(rng: np.random.Generator, name: str, n: int, shift: float,
              co_occurrence: float = 0.0) -> dict[str, np.ndarray]:
    """Fraud (or its legit look-alike) of one scenario; features interact within a scenario.

    With `co_occurrence` > 0 (fraud), each row also takes each other scenario's signal, except
    its amount, with that probability.
    """
    base = _legit(rng, n, shift)
    base.update(_signal(rng, name, n))
    if co_occurrence > 0 and name in SCENARIOS[1:]:
        for other in SCENARIOS[1:]:
            if other == name:
                continue
            extra = _signal(rng, other, n)
            take = rng.random(n) < co_occurrence
            for key, values in extra.items():
                if key != "amount":
                    base[key] = np.where(take, values, base[key])
    return base


def generate(cfg: GeneratorConfig, seed: int) -> pd.DataFrame:
    """Synthetic transactions with overlapping classes, deterministic for (cfg, seed)."""
    rng = np.random.default_rng(seed)
    n_fraud = round(cfg.n_rows * cfg.fraud_rate)
    n_legit = cfg.n_rows - n_fraud
    parts: list[pd.DataFrame] = []

    n_look = round(n_legit * cfg.lookalike_share)
    legit = pd.DataFrame(_legit(rng, n_legit - n_look, cfg.shift))
    legit["scenario"] = "legit"
    parts.append(legit)
    look_kinds = rng.choice(SCENARIOS[1:], size=n_look)
    for name in SCENARIOS[1:]:
        k = int((look_kinds == name).sum())
        frame = pd.DataFrame(_scenario(rng, name, k, cfg.shift))
        frame["scenario"] = f"lookalike_{name}"
        parts.append(frame)
    for frame in parts:
        frame[LABEL] = 0

    weights = np.array([cfg.stealth_share] + [(1 - cfg.stealth_share) / 3] * 3)
    kinds = rng.choice(SCENARIOS, size=n_fraud, p=weights / weights.sum())
    for name in SCENARIOS:
        k = int((kinds == name).sum())
        frame = pd.DataFrame(_scenario(rng, name, k, cfg.shift, CO_OCCURRENCE))
        frame["scenario"] = name
        frame[LABEL] = 1
        parts.append(frame)

    df = pd.concat(parts, ignore_index=True)
    df = _clip_to_schema(df)
    flip = rng.random(len(df)) < cfg.label_noise
    df.loc[flip, LABEL] = 1 - df.loc[flip, LABEL]
    order = rng.permutation(len(df))
    df = df.iloc[order].reset_index(drop=True)
    return df[[*FEATURE_NAMES, LABEL, "scenario"]]


def _clip_to_schema(df: pd.DataFrame) -> pd.DataFrame:
    """Bring generated values inside the schema's ranges (rounding integers)."""
    df = df.copy()
    df["amount"] = df["amount"].clip(lower=0.5).round(2)
    df["merchant_risk"] = df["merchant_risk"].clip(0, 1).round(4)
    df["card_age_days"] = df["card_age_days"].clip(lower=0).round(0)
    df["distance_km"] = df["distance_km"].clip(lower=0).round(1)
    for name in ("hour", "num_recent_txns", "is_international"):
        df[name] = df[name].round().astype(int)
    df["hour"] = df["hour"].clip(0, 23)
    return df


def load_csv(path: Path | str, label_column: str = LABEL) -> pd.DataFrame:
    """Read real transactions; every feature column and the label must exist and be valid."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"CSV file not found: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in (*FEATURE_NAMES, label_column) if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s): {', '.join(missing)}")
    for name in FEATURE_NAMES:
        values = pd.to_numeric(df[name], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column {name!r} has a missing or non-numeric value "
                f"(first at data row {row + 1}: {df[name].iloc[row]!r})"
            )
        problems = [FEATURES_BY_NAME[name].check(float(v)) for v in values]
        if any(problems):
            row = next(i for i, p in enumerate(problems) if p)
            raise DataError(
                f"{path}: column {name!r} {problems[row]} (first bad value at data row "
                f"{row + 1}: {values.iloc[row]!r})"
            )
        df[name] = values
    labels = pd.to_numeric(df[label_column], errors="coerce")
    if not labels.isin([0, 1]).all():
        raise DataError(f"{path}: label column {label_column!r} must hold only 0 and 1")
    if labels.nunique() < 2:
        raise DataError(f"{path}: label column {label_column!r} needs both classes (0 and 1)")
    out = df[list(FEATURE_NAMES)].copy()
    out[LABEL] = labels.astype(int)
    out["scenario"] = "csv"
    return out


@dataclass(frozen=True)
class Splits:
    """Disjoint train / validation / test frames and their content hashes."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def hashes(self) -> dict[str, str]:
        return {name: frame_hash(getattr(self, name)) for name in ("train", "validation", "test")}

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "validation", "test")}


def frame_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the features and label, in order: identifies a split's exact content."""
    arr = np.ascontiguousarray(df[[*FEATURE_NAMES, LABEL]].to_numpy(dtype=np.float64))
    return hashlib.sha256(arr.tobytes()).hexdigest()


def row_hashes(df: pd.DataFrame) -> set[bytes]:
    """One digest per row (features + label), to prove two splits share no rows."""
    arr = np.ascontiguousarray(df[[*FEATURE_NAMES, LABEL]].to_numpy(dtype=np.float64))
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in arr}


def split(df: pd.DataFrame, cfg: DataConfig) -> Splits:
    """Stratified, disjoint-by-construction split: each row index lands in exactly one split."""
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
    frames = [df[assignment == k].reset_index(drop=True) for k in (0, 1, 2)]
    return Splits(train=frames[0], validation=frames[1], test=frames[2])


def load(cfg: DataConfig) -> pd.DataFrame:
    """The full data set named by the config."""
    if cfg.source == "csv":
        return load_csv(cfg.csv_path or "", cfg.label_column)
    return generate(cfg.generator, cfg.seed)


def load_splits(cfg: DataConfig) -> Splits:
    """Load and split; the same config always yields the same splits."""
    return split(load(cfg), cfg)

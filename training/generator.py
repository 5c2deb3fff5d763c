"""The built-in transaction generator: the seed's seven synthetic features with fraud scenarios.

It makes the seed's features only (configs/features.yaml's default); a data set with other
features comes from a file (training/files.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud.config import GeneratorConfig
from fraud.schema import FEATURE_NAMES, LABEL

SCENARIOS = ("stealth", "new_card_burst", "risky_merchant_night", "foreign_far")


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

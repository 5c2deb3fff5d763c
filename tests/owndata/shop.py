"""A second, different data set for the tests: a web shop's card payments with 12 features
(two categorical, one boolean), a timestamp, a card id and its own column names, written as
a CSV with the feature file, training config and gate config that describe it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = ("grocery", "fuel", "travel", "electronics", "gaming")
DEVICES = ("ios", "android", "web")

FEATURES_YAML = """
amount_feature: amount_eur
features:
  - {name: amount_eur, description: Payment amount in euros., type: number, min: 0,
     min_exclusive: true, example: 420.0, reason: "{value} EUR"}
  - {name: hour_local, description: Local hour of the payment., type: integer, min: 0,
     max: 23, example: 3}
  - name: merchant_category
    description: What the merchant sells.
    type: category
    values: [grocery, fuel, travel, electronics, gaming]
    unseen: other
    example: electronics
    reason: "merchant sells {value}"
  - {name: device, description: Device the payment came from., type: category,
     values: [ios, android, web], example: web, reason: "paid from {value}"}
  - {name: card_present, description: The card was physically present., type: boolean,
     example: false, reason: {true: card present, false: card not present}}
  - {name: account_age_days, description: Days since the account was opened., type: number,
     min: 0, example: 4}
  - {name: txn_count_1h, description: Payments on this card in the last hour.,
     type: integer, min: 0, example: 6}
  - {name: txn_count_24h, description: Payments on this card in the last day.,
     type: integer, min: 0, example: 14}
  - {name: distance_from_home_km, description: Distance from the billing address in km.,
     type: number, min: 0, example: 800}
  - {name: ip_risk, description: IP reputation risk from 0 to 1., type: number, min: 0,
     max: 1, example: 0.9}
  - {name: avg_amount_30d, description: Mean payment on this card over 30 days.,
     type: number, min: 0, example: 35.0}
  - {name: failed_logins_24h, description: Failed logins on the account in the last day.,
     type: integer, min: 0, max: 100, example: 3}
"""

TRAINING_YAML = """
data:
  source: csv
  path: {csv}
  label_column: chargeback
  columns: {{amount_eur: amt, ip_risk: ip_score}}
  timestamp_column: event_time
  entity_column: card_id
  split: time
  group_by_entity: true
  min_fraud_per_split: 20
champion:
  name: shop_rf
  estimator: random_forest
  params: {{n_estimators: 60, max_depth: 10, min_samples_leaf: 2,
            class_weight: balanced_subsample, n_jobs: 1, random_state: 7}}
challenger:
  name: shop_xgb
  estimator: xgboost
  params: {{n_estimators: 150, max_depth: 4, learning_rate: 0.1, random_state: 7}}
threshold:
  rule: cost                 # the amount is the feature file's amount_feature
registered_model_name: shop-fraud
experiment_name: shop
"""

# Thresholds chosen by cost trade precision for recall: the floors say what this team needs.
GATE_YAML = """
floors: {roc_auc: 0.90, recall: 0.85, precision: 0.40}
slices: {min_fraud: 30, min_legit: 30, floors: {roc_auc: 0.80}}
non_inferiority: {margins: {roc_auc: 0.01, recall: 0.05}}
behaviour:
  sample_rows: 400
  perturbations:
    ip_risk: [add, 0.3]
    txn_count_1h: [add, 4]
"""


def frame(n: int = 8000, seed: int = 5) -> pd.DataFrame:
    """`n` payments in time order; about 7% are fraud, driven by most features together."""
    rng = np.random.default_rng(seed)
    category = rng.choice(CATEGORIES, n, p=[0.35, 0.2, 0.15, 0.2, 0.1])
    device = rng.choice(DEVICES, n, p=[0.4, 0.35, 0.25])
    present = rng.random(n) < 0.45
    avg = rng.lognormal(3.4, 0.6, n)
    ip = rng.beta(1.5, 6, n)
    count_1h = rng.poisson(0.6, n)
    logins = rng.poisson(0.3, n)
    age = rng.gamma(2.0, 300, n)
    distance = rng.lognormal(2.5, 1.2, n)
    amount = avg * rng.lognormal(0, 0.5, n)
    risky = np.isin(category, ("electronics", "gaming"))
    logit = (-4.9 + 5.0 * ip + 1.3 * risky + 0.9 * (device == "web") + 1.2 * ~present
             + 0.7 * count_1h + 0.9 * np.log(amount / avg) + 0.6 * logins
             - 0.0015 * age + 0.6 * np.log1p(distance / 50))
    fraud = rng.random(n) < 1 / (1 + np.exp(-1.6 * logit))
    # Fraud behaves like fraud: bursts, big baskets, far away, at night.
    burst = fraud & (rng.random(n) < 0.6)
    count_1h = np.where(burst, count_1h + rng.poisson(1.5, n), count_1h)
    amount = np.where(fraud, amount * rng.lognormal(0.4, 0.5, n), amount)
    hour = np.where(fraud & (rng.random(n) < 0.6), rng.integers(0, 6, n),
                    np.clip(np.round(rng.normal(14, 4, n)), 0, 23)).astype(int)
    start = pd.Timestamp("2025-03-01T00:00:00Z")
    jitter = rng.integers(0, 12, n)
    return pd.DataFrame({
        "event_time": [(start + pd.Timedelta(minutes=6 * i)).isoformat() for i in range(n)],
        "card_id": [f"card-{(i + j) // 6:05d}" for i, j in enumerate(jitter)],
        "amt": np.round(np.maximum(amount, 0.5), 2), "hour_local": hour,
        "merchant_category": category, "device": device,
        "card_present": np.where(present, "true", "false"),
        "account_age_days": np.round(age), "txn_count_1h": count_1h,
        "txn_count_24h": count_1h + rng.poisson(3, n),
        "distance_from_home_km": np.round(distance, 1),
        "ip_score": np.round(np.clip(ip + 0.15 * fraud * rng.random(n), 0, 1), 3),
        "avg_amount_30d": np.round(avg, 2), "failed_logins_24h": np.minimum(logins, 100),
        "chargeback": fraud.astype(int),
    })


def write(directory: Path, n: int = 8000) -> dict[str, Path]:
    """The CSV and the three config files in `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in
             ("payments.csv", "features.yaml", "training.yaml", "gate.yaml")}
    frame(n).to_csv(paths["payments.csv"], index=False)
    paths["features.yaml"].write_text(FEATURES_YAML)
    paths["training.yaml"].write_text(TRAINING_YAML.format(csv=paths["payments.csv"]))
    paths["gate.yaml"].write_text(GATE_YAML)
    return paths

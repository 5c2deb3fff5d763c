"""Training from a file end to end (real CLI and `make train DATA=...`, small data): a time
split grouped by card, its periods in the metadata, and a bad file stopped before training."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import PYTHON, ROOT, Store, train

from fraud.config import GeneratorConfig
from training.data import generate

pytestmark = pytest.mark.slow


def seed_csv(path: Path, rows: int = 6000) -> pd.DataFrame:
    """The generator's rows as a file: `amt` for amount, a timestamp and a card per row."""
    df = generate(GeneratorConfig(n_rows=rows), 11).drop(columns="scenario")
    df = df.rename(columns={"amount": "amt", "is_fraud": "fraud"})
    start = pd.Timestamp("2025-01-01T00:00:00Z")
    df["ts"] = [(start + pd.Timedelta(minutes=7 * i)).isoformat() for i in range(rows)]
    # Cards live a few hours (~40 rows): a grouped time split leaves out only the rows of
    # cards that straddle a period boundary.
    jitter = np.random.default_rng(1).integers(0, 30, rows)
    df["card"] = [f"card{(i + j) // 10}" for i, j in enumerate(jitter)]
    df.to_csv(path, index=False)
    return df


CONFIG = """
data:
  source: csv
  path: {path}
  label_column: fraud
  columns: {{amount: amt}}
  timestamp_column: ts
  entity_column: card
  split: time
  group_by_entity: true
  min_fraud_per_split: 5
champion: {{name: file_rf, estimator: random_forest,
           params: {{n_estimators: 30, max_depth: 8, random_state: 0, n_jobs: 1}}}}
challenger: {{name: file_lr, estimator: logistic_regression, params: {{max_iter: 500}}}}
"""


def _metadata(store: Store) -> list[dict]:
    out = subprocess.run([PYTHON, "-c", "import bentoml, json; print(json.dumps("
                          "[m.info.metadata for m in bentoml.models.list()]))"],
                         env=store.env(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_csv_trains_on_time_periods_without_sharing_cards(tmp_path):
    seed_csv(tmp_path / "tx.csv")
    config = tmp_path / "training.yaml"
    config.write_text(CONFIG.format(path="tx.csv"))  # relative: recorded absolute
    store = Store(home=tmp_path / "bentoml", mlflow_uri=f"sqlite:///{tmp_path / 'm.db'}")
    subprocess.run(["nice", "-n", "10", PYTHON, "-m", "training", "--config", str(config)],
                   cwd=tmp_path, env={**store.env(), "PYTHONPATH": str(ROOT)}, check=True,
                   capture_output=True, timeout=600)
    metas = _metadata(store)
    assert len(metas) == 2
    for meta in metas:
        spec, ranges = meta["data_spec"], meta["split_ranges"]
        assert spec["path"] == str(tmp_path / "tx.csv") and spec["split"] == "time"
        assert ranges["train"]["to"] < ranges["validation"]["from"]
        assert ranges["validation"]["to"] < ranges["test"]["from"]
        assert meta["rows_dropped_by_grouping"] > 0
        assert sum(meta["split_sizes"].values()) + meta["rows_dropped_by_grouping"] == 6000


def test_make_train_data_takes_a_file_and_a_bad_one_stops_before_training(tmp_path):
    df = seed_csv(tmp_path / "good.csv", rows=3000)
    df.rename(columns={"amt": "amount", "fraud": "is_fraud"}).to_csv(tmp_path / "seed.csv",
                                                                      index=False)
    store = Store(home=tmp_path / "bentoml", mlflow_uri=f"sqlite:///{tmp_path / 'm.db'}")
    make = ["nice", "-n", "10", "make", "-o", ".venv/.installed", "train",
            f"BIN={Path(PYTHON).parent}"]
    bad = df.rename(columns={"amt": "amount", "fraud": "is_fraud"}).astype({"hour": object})
    bad.loc[41, "hour"] = "late"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = subprocess.run([*make, f"DATA={tmp_path / 'bad.csv'}"], cwd=ROOT, env=store.env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.startswith("training:")]
    assert lines == [f"training: {tmp_path / 'bad.csv'}: column 'hour' has a missing or "
                     "non-numeric value (first at data row 42: 'late')"]
    assert not (store.home / "models").exists()
    out = subprocess.run([*make, f"DATA={tmp_path / 'seed.csv'}"], cwd=ROOT, env=store.env(),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "data: csv, stratified splits" in out.stdout
    assert all(m["data_spec"]["path"] == str(tmp_path / "seed.csv") for m in _metadata(store))


def test_the_generator_refuses_other_features(tmp_path):
    features = tmp_path / "features.yaml"
    features.write_text("features:\n  - {name: x, description: X., type: number}\n")
    out = subprocess.run([PYTHON, "-m", "training"], cwd=ROOT, capture_output=True, text=True,
                         env={**Store(tmp_path, "sqlite:///x").env(),
                              "FRAUDSERVE_FEATURES": str(features)}, timeout=120)
    assert out.returncode == 2
    assert "generator makes the seed's seven features only" in out.stderr
    assert "Traceback" not in out.stderr
    assert train  # the helpers' trainer is the suite's other path in

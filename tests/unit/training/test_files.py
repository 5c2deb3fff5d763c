"""Real data in: a CSV or Parquet file with other features, mapped columns, timestamps and card
ids; every bad file stops before training with one message naming the column and the row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud.config import DataConfig
from fraud.features import load_features
from training.data import DataError
from training.files import load_file

FEATURES_YAML = """
features:
  - {name: amount, description: Amount., type: number, min: 0, min_exclusive: true}
  - {name: channel, description: Channel., type: category, values: [web, app, pos]}
  - {name: country, description: Country., type: category, values: [FR, DE], unseen: other}
  - {name: is_3ds, description: 3-D Secure., type: boolean}
  - {name: items, description: Items., type: integer, min: 1, max: 50}
"""
COLUMNS = {"amount": "amt", "is_3ds": "secure"}


@pytest.fixture
def features(tmp_path):
    path = tmp_path / "features.yaml"
    path.write_text(FEATURES_YAML)
    return load_features(path)


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "amt": rng.uniform(1, 500, n).round(2),
        "channel": rng.choice(["web", "app", "pos"], n),
        "country": rng.choice(["FR", "DE", "JP"], n),
        "secure": rng.choice(["true", "false", "1", "0"], n),
        "items": rng.integers(1, 51, n),
        "fraud": np.arange(n) % 4 == 0,
        "ts": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "card": [f"c{i % 7}" for i in range(n)],
    }).astype({"fraud": int})


def _cfg(path: Path, **extra) -> DataConfig:
    source = "parquet" if path.suffix == ".parquet" else "csv"
    return DataConfig(source=source, path=str(path), label_column="fraud", columns=COLUMNS,
                      timestamp_column="ts", entity_column="card", **extra)


def _csv(tmp_path: Path, df: pd.DataFrame) -> Path:
    path = tmp_path / "tx.csv"
    df.to_csv(path, index=False)
    return path


def test_a_good_file_loads_as_model_columns(tmp_path, features):
    df = _frame()
    out = load_file(_cfg(_csv(tmp_path, df)), features)
    assert list(out.columns) == ["amount", "channel", "country", "is_3ds", "items", "is_fraud",
                                 "scenario", "timestamp", "entity"]
    np.testing.assert_allclose(out["amount"], df["amt"])
    codes = {"web": 0, "app": 1, "pos": 2}
    assert out["channel"].tolist() == [codes[c] for c in df["channel"]]
    assert out["country"].tolist() == [{"FR": 0, "DE": 1}.get(c, 2) for c in df["country"]]
    assert out["is_3ds"].tolist() == [float(s in ("true", "1")) for s in df["secure"]]
    assert str(out["timestamp"].dtype).startswith("datetime64") and out["entity"][0] == "c0"


def test_parquet_reads_the_same(tmp_path, features):
    df = _frame()
    parquet = tmp_path / "tx.parquet"
    df.to_parquet(parquet)
    pd.testing.assert_frame_equal(load_file(_cfg(parquet), features).drop(columns="scenario"),
                                  load_file(_cfg(_csv(tmp_path, df)), features).drop(
                                      columns="scenario"))


def _set(df: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    df = df.astype({column: object})
    df.loc[row, column] = value
    return df


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.drop(columns=["amt", "ts"]), "missing column(s): amt, ts"),
    (lambda d: _set(d, "amt", 2, "abc"), "column 'amt' (feature amount) has a missing or "
                                         "non-numeric value (first at data row 3: 'abc')"),
    (lambda d: _set(d, "amt", 5, -2.0), "column 'amt' (feature amount) must be a finite "
                                        "number > 0 and <= 9007199254740991 (first bad value "
                                        "at data row 6: -2.0)"),
    (lambda d: _set(d, "items", 1, 51), "column 'items' must be an integer >= 1 and <= 50 "
                                        "(first bad value at data row 2: 51.0)"),
    (lambda d: _set(d, "channel", 3, "fax"), "column 'channel' at data row 4 (value 'fax'): "
                                             "unknown category"),
    (lambda d: _set(d, "channel", 0, None), "column 'channel' at data row 1"),
    (lambda d: _set(d, "secure", 7, "maybe"), "column 'secure' (feature is_3ds) at data row "
                                              "8 (value 'maybe'): must be true/false or 1/0"),
    (lambda d: _set(d, "fraud", 9, 2), "label column 'fraud' must hold only 0 and 1 (first "
                                       "other value at data row 10: 2)"),
    (lambda d: d.assign(fraud=0), "label column 'fraud' needs both classes"),
    (lambda d: _set(d, "ts", 4, "yesterday"), "column 'ts' at data row 5 (value "
                                              "'yesterday'): missing or unreadable timestamp"),
    (lambda d: _set(d, "card", 6, None), "column 'card' at data row 7"),
])
def test_a_bad_file_is_one_message_naming_column_and_row(tmp_path, features, mutate,
                                                          message):
    with pytest.raises(DataError) as err:
        load_file(_cfg(_csv(tmp_path, mutate(_frame()))), features)
    assert message in str(err.value)
    assert str(tmp_path / "tx.csv") in str(err.value)
    assert "\n" not in str(err.value)


def test_a_mapping_to_no_feature_is_refused(tmp_path, features):
    cfg = _cfg(_csv(tmp_path, _frame())).model_copy(update={"columns": {"amout": "amt"}})
    with pytest.raises(DataError, match=r"maps amout, which configs/features\.yaml"):
        load_file(cfg, features)


def test_missing_and_unreadable_files(tmp_path, features):
    with pytest.raises(DataError, match="CSV file not found"):
        load_file(_cfg(tmp_path / "nope.csv"), features)
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_file(_cfg(bad), features)


def test_unix_seconds_are_timestamps(tmp_path, features):
    df = _frame().assign(ts=lambda d: 1_700_000_000 + np.arange(len(d)) * 60)
    out = load_file(_cfg(_csv(tmp_path, df)), features)
    assert out["timestamp"][0] == pd.Timestamp("2023-11-14T22:13:20Z")


@pytest.mark.parametrize(("data", "words"), [
    ({"source": "parquet"}, "data.path is required"),
    ({"source": "csv"}, "data.csv_path is required"),
    ({"split": "time"}, "needs data.timestamp_column"),
    ({"group_by_entity": True}, "needs data.entity_column"),
    ({"source": "csv", "path": "a.csv", "csv_path": "b.csv"}, "name different files"),
])
def test_bad_data_configs(data, words):
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        DataConfig.model_validate(data)

"""Real transactions from a CSV or Parquet file, checked against configs/features.yaml.

Every problem stops the load before training with one message naming the file, the column
and the first bad data row (row 1 is the first row after a CSV's header): a missing column,
a missing or non-numeric value, a value outside a feature's range, an unknown category, a
label that is not 0/1, an unreadable timestamp, a missing card id.

The frame it returns has one float column per feature (categories as their codes, booleans
as 0/1: fraud/features.py), the label, and `timestamp` (UTC) and `entity` when the config
names those columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud.config import DataConfig
from fraud.schema import FEATURES, LABEL, Feature
from training.errors import DataError

TRUE, FALSE = frozenset({"1", "true", "yes"}), frozenset({"0", "false", "no"})


def read_file(path: Path, source: str, text_columns: list[str]) -> pd.DataFrame:
    """The raw table; `text_columns` are read as text (categories, ids), the rest as found."""
    if not path.exists():
        raise DataError(f"{source.upper()} file not found: {path}")
    try:
        if source == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={c: str for c in text_columns}, keep_default_na=True)
    except ImportError as exc:
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install pyarrow): "
                        f"{exc}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable {source} file ({exc})") from exc


def _py(value: Any) -> Any:
    """A numpy scalar as the plain Python value (so messages show 2, not np.int64(2))."""
    return value.item() if isinstance(value, np.generic) else value


def _where(path: Path, column: str, name: str, row: int, value: Any) -> str:
    named = f"column {column!r}" + (f" (feature {name})" if column != name else "")
    return f"{path}: {named} at data row {row + 1} (value {_py(value)!r})"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numeric(path: Path, raw: pd.Series, f: Feature, column: str) -> np.ndarray:
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first(bad)
        named = f"column {column!r}" + (f" (feature {f.name})" if column != f.name else "")
        raise DataError(f"{path}: {named} has a missing or non-numeric value (first at data "
                        f"row {row + 1}: {_py(raw.iloc[row])!r})")
    problems = np.array([f.check(float(v)) is not None for v in values])
    if problems.any():
        row = _first(problems)
        named = f"column {column!r}" + (f" (feature {f.name})" if column != f.name else "")
        raise DataError(f"{path}: {named} {f.rule()} (first bad value at data row "
                        f"{row + 1}: {float(values[row])!r})")
    return values


def _boolean(path: Path, raw: pd.Series, f: Feature, column: str) -> np.ndarray:
    text = raw.astype("string").str.strip().str.lower()
    true, false = text.isin(TRUE).to_numpy(dtype=bool), text.isin(FALSE).to_numpy(dtype=bool)
    bad = ~(true | false)
    if bad.any():
        row = _first(bad)
        raise DataError(f"{_where(path, column, f.name, row, raw.iloc[row])}: "
                        "must be true/false or 1/0")
    return true.astype(float)


def _category(path: Path, raw: pd.Series, f: Feature, column: str) -> np.ndarray:
    text = raw.astype("string").str.strip()
    missing = text.isna().to_numpy(dtype=bool) | (text == "").to_numpy(dtype=bool, na_value=True)
    if missing.any():
        row = _first(missing)
        raise DataError(f"{_where(path, column, f.name, row, raw.iloc[row])}: missing "
                        "category")
    known = text.isin(f.values).to_numpy(dtype=bool)
    if not known.all() and f.unseen == "reject":
        row = _first(~known)
        raise DataError(f"{_where(path, column, f.name, row, raw.iloc[row])}: unknown "
                        f"category; {f.name} {f.rule()} (or set unseen: other in the "
                        "feature file)")
    codes = {v: float(i) for i, v in enumerate(f.values)}
    return np.array([codes.get(v, float(len(f.values))) for v in text], dtype=float)


def _labels(path: Path, raw: pd.Series, column: str) -> np.ndarray:
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        row = _first(bad)
        raise DataError(f"{path}: label column {column!r} must hold only 0 and 1 (first "
                        f"other value at data row {row + 1}: {_py(raw.iloc[row])!r})")
    if len(np.unique(values)) < 2:
        raise DataError(f"{path}: label column {column!r} needs both classes (0 and 1)")
    return values.astype(int)


def _timestamps(path: Path, raw: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw):
        stamps = pd.to_datetime(raw, unit="s", utc=True, errors="coerce")
    else:
        stamps = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    bad = stamps.isna().to_numpy(dtype=bool)
    if bad.any():
        row = _first(bad)
        raise DataError(f"{_where(path, column, column, row, raw.iloc[row])}: missing or "
                        "unreadable timestamp (ISO 8601 or Unix seconds)")
    return stamps


def _entities(path: Path, raw: pd.Series, column: str) -> pd.Series:
    text = raw.astype("string").str.strip()
    bad = text.isna().to_numpy(dtype=bool) | (text == "").to_numpy(dtype=bool, na_value=True)
    if bad.any():
        row = _first(bad)
        raise DataError(f"{_where(path, column, column, row, raw.iloc[row])}: missing id")
    return text.astype(str)


def load_file(cfg: DataConfig, features: tuple[Feature, ...] = FEATURES) -> pd.DataFrame:
    """The file named by `cfg` as model-ready columns, or a DataError naming the problem."""
    path = Path(cfg.file or "")
    mapping = {f.name: cfg.columns.get(f.name, f.name) for f in features}
    unknown = sorted(set(cfg.columns) - set(mapping))
    if unknown:
        raise DataError(f"data.columns maps {', '.join(unknown)}, which configs/features.yaml "
                        "does not define")
    extra = [c for c in (cfg.timestamp_column, cfg.entity_column) if c]
    text = [mapping[f.name] for f in features if f.kind in ("category", "boolean")]
    df = read_file(path, cfg.source, [*text, *([cfg.entity_column] if cfg.entity_column
                                               else [])])
    wanted = [*mapping.values(), cfg.label_column, *extra]
    missing = [c for c in dict.fromkeys(wanted) if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s): {', '.join(missing)}")
    if df.empty:
        raise DataError(f"{path}: no data rows")
    out = pd.DataFrame(index=range(len(df)))
    readers = {"number": _numeric, "integer": _numeric, "boolean": _boolean,
               "category": _category}
    raw = df.reset_index(drop=True)
    for f in features:
        column = mapping[f.name]
        out[f.name] = readers[f.kind](path, raw[column], f, column)
    out[LABEL] = _labels(path, raw[cfg.label_column], cfg.label_column)
    out["scenario"] = cfg.source
    if cfg.timestamp_column:
        out["timestamp"] = _timestamps(path, raw[cfg.timestamp_column],
                                       cfg.timestamp_column).to_numpy()
    if cfg.entity_column:
        out["entity"] = _entities(path, raw[cfg.entity_column], cfg.entity_column).to_numpy()
    return out

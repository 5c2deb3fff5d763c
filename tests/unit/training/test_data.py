"""Data expectations: determinism, fraud rate, difficulty, leak-proof splits, CSV errors."""

import numpy as np
import pandas as pd
import pytest

from fraud.config import DataConfig, GeneratorConfig, load_training_config
from fraud.schema import FEATURE_NAMES, FEATURES_BY_NAME, LABEL
from training.data import DataError, frame_hash, generate, load_csv, row_hashes, split

CFG = GeneratorConfig(n_rows=20_000)


def test_the_shipped_config_trains_on_the_code_defaults():
    # One source of truth: GeneratorConfig's (and DataConfig's) defaults are the training data;
    # the unit tests, drift reference and docs that use them see what the models were trained on.
    assert load_training_config().data == DataConfig()
    assert load_training_config().data.generator == GeneratorConfig()


def test_generator_is_deterministic_per_seed():
    a, b, c = generate(CFG, 1), generate(CFG, 1), generate(CFG, 2)
    pd.testing.assert_frame_equal(a, b)
    assert frame_hash(a) != frame_hash(c)


def test_fraud_rate_and_schema():
    df = generate(GeneratorConfig(n_rows=50_000), 3)
    assert list(df.columns[:8]) == [*FEATURE_NAMES, LABEL]
    assert 0.017 < df[LABEL].mean() < 0.023
    assert df.notna().all().all()
    for name in FEATURE_NAMES:
        assert not any(FEATURES_BY_NAME[name].check(float(v)) for v in df[name].unique())


def test_classes_overlap():
    # The reference's generator was separable (ROC AUC 1.0 for any model); ours must not be:
    # every feature's fraud range overlaps the legit range, and there is stealth fraud.
    df = generate(GeneratorConfig(n_rows=50_000), 4)
    fraud, legit = df[df[LABEL] == 1], df[df[LABEL] == 0]
    for name in ("amount", "merchant_risk", "card_age_days", "distance_km"):
        assert fraud[name].min() < legit[name].median() < fraud[name].max()
    assert (df["scenario"] == "stealth").sum() > 0


def test_every_risk_factor_at_once_is_mostly_fraud():
    # Fraud signals co-occur; a legit look-alike carries one scenario's signal only. So rows
    # with all six risk factors (the reference's suspicious example lives here) are fraud but
    # for label noise; with the old generator this corner was empty and models extrapolated.
    df = generate(GeneratorConfig(n_rows=400_000), 9)
    extreme = df[(df["merchant_risk"] >= 0.7) & (df["card_age_days"] <= 30)
                 & (df["distance_km"] >= 300) & (df["num_recent_txns"] >= 8)
                 & (df["is_international"] == 1) & ((df["hour"] >= 22) | (df["hour"] < 6))]
    assert len(extreme) >= 50
    assert extreme[LABEL].mean() >= 0.95
    lookalikes = df[df["scenario"].str.startswith("lookalike_")]
    assert len(lookalikes) > 0 and not lookalikes.index.isin(extreme.index).any()


def test_shift_moves_the_distributions():
    base = generate(CFG, 5)
    moved = generate(CFG.model_copy(update={"shift": 1.0}), 5)
    assert moved["amount"].median() > base["amount"].median() * 1.2
    assert moved["merchant_risk"].mean() > base["merchant_risk"].mean()


def test_splits_are_disjoint_stratified_and_hashed():
    df = generate(CFG, 6)
    s = split(df, DataConfig(seed=6))
    assert sum(s.sizes().values()) == len(df)
    assert not row_hashes(s.train) & row_hashes(s.test)
    assert not row_hashes(s.train) & row_hashes(s.validation)
    assert len(set(s.hashes().values())) == 3
    rates = [f[LABEL].mean() for f in (s.train, s.validation, s.test)]
    assert max(rates) - min(rates) < 0.002
    assert s.hashes() == split(df, DataConfig(seed=6)).hashes()


def _write(tmp_path, df):
    path = tmp_path / "tx.csv"
    df.to_csv(path, index=False)
    return path


def test_csv_loader_reads_a_good_file(tmp_path):
    df = generate(GeneratorConfig(n_rows=500), 7).drop(columns="scenario")
    out = load_csv(_write(tmp_path, df))
    assert list(out.columns[:8]) == [*FEATURE_NAMES, LABEL]
    np.testing.assert_allclose(out["amount"], df["amount"])


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.drop(columns="merchant_risk"), "missing column(s): merchant_risk"),
    (lambda d: d.drop(columns=LABEL), f"missing column(s): {LABEL}"),
    (lambda d: d.assign(hour=["x", *list(d["hour"][1:])]), "column 'hour' has a missing or "
                                                            "non-numeric value"),
    (lambda d: d.assign(amount=-1.0), "column 'amount' must be a finite number > 0"),
    (lambda d: d.assign(is_international=3), "column 'is_international' must be an integer"),
    (lambda d: d.assign(**{LABEL: 2}), "must hold only 0 and 1"),
    (lambda d: d.assign(**{LABEL: 0}), "needs both classes"),
])
def test_csv_loader_names_the_bad_column(tmp_path, mutate, message):
    df = generate(GeneratorConfig(n_rows=300), 8).drop(columns="scenario")
    with pytest.raises(DataError, match=None) as err:
        load_csv(_write(tmp_path, mutate(df)))
    assert message in str(err.value)


def test_csv_loader_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_csv(tmp_path / "nope.csv")

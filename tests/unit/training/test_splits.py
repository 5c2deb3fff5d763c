"""Splits by time and by card: property tests (hypothesis) of the two promises, and the
too-few-frauds refusal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.config import DataConfig
from fraud.schema import FEATURE_NAMES, LABEL
from training.data import DataError
from training.splits import assign, split, time_cuts

fractions = st.tuples(st.floats(0.05, 0.35), st.floats(0.05, 0.35))


def _frame(stamps: list[int], cards: list[int]) -> pd.DataFrame:
    n = len(stamps)
    df = pd.DataFrame({name: np.arange(n, dtype=float) for name in FEATURE_NAMES})
    df[LABEL] = np.arange(n) % 2
    df["timestamp"] = pd.to_datetime(np.asarray(stamps, dtype="int64"), unit="s", utc=True)
    df["entity"] = [f"card{c}" for c in cards]
    return df


def _cfg(val: float, test: float, **extra) -> DataConfig:
    return DataConfig(source="csv", path="x.csv", timestamp_column="ts", entity_column="card",
                      validation_fraction=val, test_fraction=test, **extra)


rows = st.integers(3, 300).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 50), min_size=n, max_size=n),  # few distinct times: many ties
    st.lists(st.integers(0, 20), min_size=n, max_size=n)))


@settings(max_examples=150, deadline=None)
@given(rows, fractions, st.booleans())
def test_a_time_split_never_puts_a_test_period_row_in_training(data, shares, grouped):
    stamps, cards = data
    df = _frame(stamps, cards)
    cfg = _cfg(*shares, split="time", group_by_entity=grouped)
    where = assign(df, cfg)
    t = df["timestamp"].to_numpy()
    val_start, test_start = time_cuts(t, cfg)
    assert (t[where == 0] < val_start).all()  # training: before validation and test periods
    assert (t[where == 1] < test_start).all() and (t[where == 1] >= val_start).all()
    assert (t[where == 2] >= test_start).all()
    if not grouped:
        assert (where >= 0).all()
        # Periods are whole: every row of the test period is in the test split.
        assert (where[t >= test_start] == 2).all()


@settings(max_examples=150, deadline=None)
@given(rows, fractions, st.sampled_from(["time", "stratified"]))
def test_a_grouped_split_never_puts_a_card_in_two_splits(data, shares, how):
    stamps, cards = data
    df = _frame(stamps, cards)
    where = assign(df, _cfg(*shares, split=how, group_by_entity=True))
    kept = pd.Series(where[where >= 0]).groupby(df["entity"].to_numpy()[where >= 0])
    assert (kept.nunique() == 1).all()
    if how == "stratified":
        assert (where >= 0).all()


def test_time_splits_carry_their_periods():
    df = _frame(list(range(0, 100 * 3600, 3600)), [i % 10 for i in range(100)])
    s = split(df, _cfg(0.2, 0.2, split="time", min_fraud_per_split=5))
    assert s.sizes() == {"train": 60, "validation": 20, "test": 20}
    ranges = s.ranges()
    assert ranges["train"] == {"from": "1970-01-01T00:00:00+00:00",
                               "to": "1970-01-03T11:00:00+00:00"}
    assert ranges["test"]["from"] == "1970-01-04T08:00:00+00:00"


def test_a_grouped_time_split_leaves_out_later_rows_of_earlier_cards():
    cards = [i % 8 for i in range(80)] + [0, 1, 2, 3, 4, 20, 21, 22, 23, 24] + [
        0, 20, 30, 31, 32, 33, 34, 35, 36, 37]
    df = _frame(list(range(100)), cards)
    where = assign(df, _cfg(0.1, 0.1, split="time", group_by_entity=True))
    assert (where[:80] == 0).all()
    assert where[80:90].tolist() == [-1] * 5 + [1] * 5  # cards 0-4 belong to training
    assert where[90:].tolist() == [-1, -1] + [2] * 8  # card 0: training, card 20: validation
    assert split(df, _cfg(0.1, 0.1, split="time", group_by_entity=True,
                          min_fraud_per_split=2)).dropped == 7


def test_too_few_frauds_in_a_split_is_one_message():
    df = _frame(list(range(100)), list(range(100)))
    df[LABEL] = (np.arange(100) < 30).astype(int)  # every fraud in the oldest rows
    with pytest.raises(DataError) as err:
        split(df, _cfg(0.2, 0.2, split="time"))
    text = str(err.value)
    assert text.startswith("the validation split (1970-01-01T00:01:00+00:00 to "
                           "1970-01-01T00:01:19+00:00) has 0 fraud and 20 legit rows")
    assert "data.min_fraud_per_split" in text

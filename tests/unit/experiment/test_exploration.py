"""Exploration's pure rules: the deterministic draw, eligibility, outcome and propensity."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pydantic import ValidationError

from fraud.config import ABConfig
from fraud.config.ab import ExplorationConfig
from fraud.experiment.exploration import NOT_ELIGIBLE, Choice, candidate, choose, draw

ON = ExplorationConfig(enabled=True, rate=0.1, max_amount=100.0, daily_budget=1000.0)


def test_draw_is_the_documented_hash_and_reproducible() -> None:
    digest = hashlib.sha256(b"explore:salt-1:req-42").digest()
    assert draw("salt-1", "req-42") == int.from_bytes(digest[:8], "big") / 2**64
    assert draw("salt-1", "req-42") == draw("salt-1", "req-42")
    assert draw("salt-2", "req-42") != draw("salt-1", "req-42")


def test_draws_are_uniform_in_the_unit_interval() -> None:
    u = np.array([draw("s", f"r{i}") for i in range(20_000)])
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    assert abs((u < 0.1).mean() - 0.1) < 0.006


@pytest.mark.parametrize(("flagged", "amount", "expected"), [
    (True, 50.0, True), (True, 100.0, True), (True, 100.01, False), (False, 50.0, False),
    (True, None, False), (True, float("nan"), False)])
def test_candidate_needs_a_flag_and_an_amount_within_the_cap(flagged, amount, expected) -> None:
    assert candidate(ON, flagged, amount) is expected


@pytest.mark.parametrize("cfg", [
    ExplorationConfig(), ExplorationConfig(enabled=True, rate=0.0, max_amount=100,
                                           daily_budget=1000),
    ExplorationConfig(enabled=False, rate=0.1, max_amount=100, daily_budget=1000),
    ExplorationConfig(enabled=True, rate=0.1, max_amount=100, daily_budget=0)])
def test_off_in_every_way_explores_nothing(cfg) -> None:
    assert not cfg.on
    assert choose(cfg, 0.0, True, 10.0, True) == NOT_ELIGIBLE


def test_choose_explores_below_the_rate_and_stores_the_rate_as_propensity() -> None:
    assert choose(ON, 0.05, True, 10.0, True) == Choice(True, True, 0.1)
    assert choose(ON, 0.10, True, 10.0, True) == Choice(True, False, 0.1)
    assert choose(ON, 0.05, True, 10.0, False) == Choice(False, False, 0.0)  # no budget
    assert choose(ON, 0.05, True, 500.0, True) == Choice(False, False, 0.0)  # over the cap
    assert choose(ON, 0.05, False, 10.0, True) == Choice(False, False, 0.0)  # approved anyway


@pytest.mark.parametrize(("field", "value"), [
    ("rate", 0.21), ("rate", -0.01), ("max_amount", -1), ("daily_budget", -5)])
def test_a_bad_value_refuses_the_config_naming_the_field(field, value) -> None:
    with pytest.raises(ValidationError) as caught:
        ABConfig.model_validate({"exploration": {field: value}})
    assert f"exploration.{field}" in str(caught.value)


def test_off_by_default_and_the_lease_covers_the_largest_amount() -> None:
    assert not ABConfig().exploration.on
    assert ON.lease_size() == 100.0  # max(max_amount, budget / 50 = 20)
    assert ExplorationConfig(enabled=True, rate=0.1, max_amount=5,
                             daily_budget=1000).lease_size() == 20.0
    assert ExplorationConfig(enabled=True, rate=0.1, max_amount=5, daily_budget=1000,
                             lease=7).lease_size() == 7.0

"""fraud.stats.split: which estimator answers, label_bias in place of better/worse, and the
memory never learning from biased looks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from label_rows import make

from fraud.config import StatsSettings
from fraud.stats import split
from fraud.stats.aggregates import ArmPeriod, Periods
from fraud.stats.labels import ArmLabels
from fraud.stats.sequential import Memory
from fraud.stats.users import primary_look

S = StatsSettings()
USERS = 40


def _arm(tp: int, fn: int) -> ArmPeriod:
    one = np.ones(USERS)
    return ArmPeriod.from_users(20 * one, (tp + 1) * one, 0 * one, (tp + fn) * one, tp * one,
                                one, fn * one, (19 - tp - fn) * one)


WORSE: Periods = {1: {"model_a": _arm(9, 1), "model_b": _arm(2, 8)}}


def _rows(reviewed: float, explored: float = 0.0, caught: float = 0.0) -> ArmLabels:
    """40 users per arm: 10 declines each, `reviewed` of them labelled; with exploration,
    `explored` explored declines per user (p = 0.1) of which `caught` frauds."""
    rng = np.random.default_rng(0)
    def arm(c: float) -> object:
        return make(n=[20.0] * USERS, flagged=[10.0] * USERS, explored=[explored] * USERS,
                    labelled_declined=[10.0 * reviewed] * USERS,
                    fraud_approved=rng.integers(1, 4, USERS).astype(float).tolist(),
                    fraud_explored_w=(10 * rng.binomial(1, c, USERS)).astype(float).tolist()
                    if c else [0.0] * USERS, explored_w=[10.0 * explored] * USERS)
    return ArmLabels(arm(caught), arm(caught / 4), exploring=explored > 0)  # type: ignore


def test_without_labels_it_is_the_label_blind_comparison() -> None:
    look = split.look(WORSE, S)
    assert {k: look[k] for k in primary_look(WORSE, S)} == primary_look(WORSE, S)
    assert look["verdict"] == "challenger_worse" and look["estimator"] == "labelled rows"
    assert look["label_bias"] is None


def test_label_bias_replaces_the_verdict_and_stays_out_of_the_memory() -> None:
    biased = _rows(reviewed=0.3)
    look = split.look(WORSE, S, labels=biased)
    assert (look["verdict"], look["label_bias"], look["enough"]) == ("label_bias", True, False)
    block, mem = split.primary(WORSE, S, Memory(), labels=biased)
    assert block["verdict"] == "label_bias" and block["latched_verdict"] == "collecting"
    assert mem == Memory()  # the biased look taught the memory nothing
    assert block["labels"]["per_arm"]["model_a"]["declined"]["value"] == pytest.approx(0.3)
    json.dumps(block, allow_nan=False)
    # an old verdict latched before is kept in memory but not shown while the bias holds
    _, latched = split.primary(WORSE, S, Memory())
    block, mem2 = split.primary(WORSE, S, latched, labels=biased)
    assert block["verdict"] == "label_bias" and block["latched_verdict"] == "challenger_worse"
    assert mem2 == latched


def test_reviewed_declines_leave_the_label_blind_verdict() -> None:
    look = split.look(WORSE, S, labels=_rows(reviewed=0.95))
    assert (look["verdict"], look["label_bias"]) == ("challenger_worse", False)


def test_the_rollback_look_only_refuses_when_the_arms_are_selected_differently() -> None:
    same = split.look(WORSE, S, S.sequential_alpha, labels=_rows(0.3), rollback=True)
    assert same["verdict"] == "challenger_worse" and same["label_bias"] is False
    a, b = _rows(0.3).model_a, _rows(0.9).model_b
    differ = split.look(WORSE, S, labels=ArmLabels(a, b), rollback=True)
    assert differ["verdict"] == "label_bias"


def test_exploration_switches_to_the_ipw_estimates() -> None:
    labels = _rows(reviewed=0.3, explored=1.0, caught=0.8)
    look = split.look(WORSE, S, labels=labels)
    assert look["estimator"] == "inverse propensity" and look["label_bias"] is False
    assert look["estimate"] is not None and look["estimate"] < 0  # B catches a quarter
    block, _ = split.primary(WORSE, S, Memory(), labels=labels)
    assert set(block["ipw"]) == {"model_a", "model_b"}
    assert block["legit_decline"]["source"] == "label rows"
    json.dumps(block, allow_nan=False)


def test_ipw_needs_min_fraud_users() -> None:
    labels = _rows(reviewed=0.3, explored=1.0, caught=0.8)
    strict = StatsSettings(min_fraud_users_per_arm=USERS + 1)
    look = split.look(WORSE, strict, labels=labels)
    assert look["verdict"] == "collecting" and look["enough"] is False

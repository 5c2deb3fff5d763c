"""fraud.experiment.look.judge with the new inputs: label rows, per-user period rows, and
periods spending alpha; without them, today's behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fraud.config import ABConfig, GuardrailConfig, ShadowConfig
from fraud.experiment import guardrails
from fraud.experiment.look import judge
from fraud.experiment.state import ExperimentState
from fraud.stats.aggregates import FIELDS, ArmPeriod, PairedUsers, Periods
from fraud.stats.labels import LABEL_FIELDS, ArmLabels, LabelUsers
from fraud.stats.periods import spent

USERS = 300
STATE = ExperimentState(period=1, period_share=0.5)


def _arm(tp: int, fn: int, fp: int = 1, users: int = USERS) -> ArmPeriod:
    one = np.ones(users)
    return ArmPeriod.from_users(40 * one, (tp + fp) * one, 0 * one, (tp + fn) * one, tp * one,
                                fp * one, fn * one, (40 - tp - fn - fp) * one)


def _labels(reviewed: float, legit_flags: float = 2.0, seed: int = 0) -> LabelUsers:
    """USERS users, 40 decisions each; `legit_flags` legit declines and 1 fraud decline per
    user on average, `reviewed` of the declines labelled."""
    rng = np.random.default_rng(seed)
    flagged = rng.poisson(legit_flags, USERS) + 1.0
    cols = {f: np.zeros(USERS) for f in LABEL_FIELDS}
    cols.update(n=np.full(USERS, 40.0), flagged=flagged,
                labelled_declined=np.round(reviewed * flagged),
                fraud_approved=rng.integers(0, 2, USERS).astype(float),
                fraud_declined_labelled=np.round(reviewed * np.ones(USERS)))
    return LabelUsers(**cols)


WORSE: Periods = {1: {"model_a": _arm(9, 1), "model_b": _arm(3, 7)}}
EQUAL: Periods = {1: {"model_a": _arm(5, 5), "model_b": _arm(5, 5)}}


def test_without_the_new_inputs_nothing_new_judges() -> None:
    seen = judge(ABConfig(), STATE, WORSE)
    assert seen.primary["verdict"] == "challenger_worse"
    assert seen.primary["label_bias"] is None and seen.primary["labels"] is None
    assert seen.guardrail_tests["legit_decline"] is None
    assert any(b.startswith("challenger worse:") for b in seen.breaches)


def test_label_bias_replaces_the_split_verdict_but_not_the_split_rollback() -> None:
    labels = ArmLabels(_labels(0.3), _labels(0.3, seed=1))
    seen = judge(ABConfig(), STATE, WORSE, labels=labels)
    assert seen.primary["verdict"] == "label_bias"  # no better/worse on selected labels...
    # ...but both arms' labels are selected alike: the split "worse" sign stands
    assert any(b.startswith("challenger worse:") for b in seen.breaches)
    differ = ArmLabels(_labels(0.3), _labels(0.9, seed=1))
    seen = judge(ABConfig(), STATE, WORSE, labels=differ)
    assert not any(b.startswith("challenger worse") for b in seen.breaches)
    assert seen.guardrail_tests["worse"]["verdict"] == "label_bias"


def _pairs(recall_b: float) -> PairedUsers:
    cols = {f: np.zeros(USERS) for f in FIELDS}
    cols.update(n=np.full(USERS, 40.0), mature=np.full(USERS, 40.0),
                fraud=np.full(USERS, 10.0), tp_a=np.full(USERS, 9.0),
                tp_b=np.full(USERS, 10.0 * recall_b), tp_both=np.full(USERS, 10.0 * recall_b),
                flag_a=np.full(USERS, 10.0), flag_b=np.full(USERS, 10.0 * recall_b + 1))
    cols["tp_b"][::2] += 1.0  # some spread between users
    return PairedUsers(**cols)


def test_shadow_mode_the_paired_worse_refuses_label_bias_the_split_one_is_kept() -> None:
    cfg = ABConfig(shadow=ShadowConfig(enabled=True))
    biased = ArmLabels(_labels(0.3), _labels(0.3, seed=1))
    seen = judge(cfg, STATE, EQUAL, paired_users=_pairs(0.3), labels=biased)
    assert seen.guardrail_tests["worse"]["verdict"] == "label_bias"
    assert not any("worse" in b for b in seen.breaches)
    seen = judge(cfg, STATE, WORSE, paired_users=_pairs(0.3), labels=biased)
    assert any(b.startswith("challenger worse (split)") for b in seen.breaches)
    assert "alpha=0.003/2" in next(b for b in seen.breaches if "worse" in b)
    unbiased = judge(cfg, STATE, EQUAL, paired_users=_pairs(0.3))
    assert any(b.startswith("challenger worse (paired)") for b in unbiased.breaches)


def test_the_customer_harm_guardrail() -> None:
    harmful = ArmLabels(_labels(0.95), _labels(0.95, legit_flags=6.0, seed=1))
    seen = judge(ABConfig(), STATE, EQUAL, labels=harmful)
    test = seen.guardrail_tests["legit_decline"]
    assert test["inferior"] is True and test["source"] == "label rows"
    assert any(b.startswith("challenger declines legit customers") for b in seen.breaches)
    healthy = ArmLabels(_labels(0.95), _labels(0.95, seed=1))
    seen = judge(ABConfig(), STATE, EQUAL, labels=healthy)
    assert seen.guardrail_tests["legit_decline"]["inferior"] is False
    assert seen.breaches == []
    few = GuardrailConfig(min_users=USERS + 1)
    assert guardrails.legit_decline_test(EQUAL, few, labels=harmful) is None


def test_a_later_period_spends_less_alpha() -> None:
    periods = {1: EQUAL[1], 2: EQUAL[1], 3: EQUAL[1]}
    seen = judge(ABConfig(), ExperimentState(period=3, period_share=0.5), periods)
    assert seen.guardrail_tests["alpha_share"] == pytest.approx(6 / (9 * math.pi**2))
    assert seen.sample_ratio is not None
    assert seen.sample_ratio["alpha"] == pytest.approx(0.001 * 6 / (9 * math.pi**2))
    # the third period's share of alpha is stricter: some ratios breach at the full alpha and
    # not at the share; never the other way round
    cfg, rng = GuardrailConfig(), np.random.default_rng(9)
    a = _arm(0, 0, fp=2)
    outcomes = []
    for ratio in np.linspace(2.2, 3.6, 15):
        flags = rng.poisson(2 * ratio, USERS).astype(float)
        b = ArmPeriod.from_users(40 * np.ones(USERS), flags, np.zeros(USERS), np.zeros(USERS),
                                 np.zeros(USERS), flags, np.zeros(USERS), 40 - flags)
        outcomes.append((guardrails.flag_rate_breach(a, b, cfg) is not None,
                         guardrails.flag_rate_breach(a, b, cfg, spent(1.0, 3)) is not None))
    assert not any(part and not full for full, part in outcomes)
    assert any(full and not part for full, part in outcomes)

"""Thresholds from costs and alert budgets, on tiny frames with exact expected answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.config import ThresholdConfig
from training.thresholds import check_rule, choose

# Six validation rows: score, label, amount.
P = np.array([0.95, 0.9, 0.8, 0.6, 0.4, 0.1])
Y = np.array([1, 0, 1, 0, 1, 0])
AMOUNT = np.array([100.0, 50.0, 900.0, 20.0, 3.0, 10.0])
FRAME = pd.DataFrame({"amount": AMOUNT})


def test_max_f1_is_todays_rule_with_its_curve():
    t, record = choose(ThresholdConfig(), FRAME, Y, P)
    assert t == 0.4  # tp 3, fp 2: F1 0.75 (at 0.8: tp 2, fp 1, F1 0.667)
    assert record["rule"] == "max_f1" and record["settings"] == {}
    assert record["chosen"]["threshold"] == 0.4 and record["chosen"]["f1"] == pytest.approx(0.75)
    assert record["chosen"]["alerts_per_1000"] == pytest.approx(5000 / 6)
    assert [p["threshold"] for p in record["curve"]] == list(P)  # every distinct score
    assert record["curve"][0]["cost_per_1000"] == pytest.approx(1000 * (903 + 0) / 6)


def test_cost_takes_the_cheapest_threshold():
    # decline cost 5 + 2% of amount. Flag >= 0.8: legit 50 declined (6.0), fraud 3 missed
    # (3.0): 9.0. Flag >= 0.4: + legit 20 (5.4), nothing missed: 6.0 + 5.4 = 11.4.
    # Flag >= 0.95: 900 + 3 missed. So 0.8.
    t, record = choose(ThresholdConfig(rule="cost"), FRAME, Y, P)
    assert t == 0.8
    assert record["chosen"]["cost_per_1000"] == pytest.approx(1000 * 9.0 / 6)
    assert record["settings"] == {"decline_fixed": 5.0, "decline_share": 0.02,
                                  "amount_feature": "amount"}
    costs = [p["cost_per_1000"] for p in record["curve"]]
    assert min(costs) == record["chosen"]["cost_per_1000"]


def test_a_dear_decline_raises_the_threshold():
    t, _ = choose(ThresholdConfig(rule="cost", decline_fixed=1000), FRAME, Y, P)
    assert t == 0.95  # declining anyone legit now costs more than any missed fraud but 900


def test_flagging_nothing_when_that_is_cheapest():
    t, record = choose(ThresholdConfig(rule="cost", decline_fixed=1e6), FRAME,
                       np.array([0, 0, 0, 0, 1, 0]), P)
    assert t > P.max() and record["chosen"]["alerts_per_1000"] == 0.0


@pytest.mark.parametrize(("budget", "expected"), [(500, 0.8), (334, 0.9), (100, None)])
def test_alert_budget_flags_at_most_n_per_1000(budget, expected):
    t, record = choose(ThresholdConfig(rule="alert_budget", alerts_per_1000=budget), FRAME,
                       Y, P)
    flagged = (t <= P).mean() * 1000
    assert flagged <= budget
    if expected is None:
        assert t > P.max()
    else:
        assert t == expected and record["chosen"]["alerts_per_1000"] == pytest.approx(flagged)


def test_rules_that_cannot_apply_stop_before_training():
    with pytest.raises(ValueError, match=r"needs threshold\.alerts_per_1000"):
        ThresholdConfig(rule="alert_budget")
    with pytest.raises(ValueError, match="amount_feature 'amt' must be a number"):
        check_rule(ThresholdConfig(rule="cost", amount_feature="amt"))
    check_rule(ThresholdConfig(rule="cost"))

"""The issue's proof, with fixed seeds: simulated experiments judged by the service's code.

Each figure is measured here, on these seeds; `python -m simulations.ab` prints the larger
table in docs/statistics.md. The "before" figures (decision-level rules) are asserted to be
bad, so these tests show they can tell a broken rule from a sound one.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import numpy as np
import pytest

from fraud.config import load_ab_config
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.store.records import ScoringError
from fraud.store.writer import Ledger
from simulations.ab import HEALTHY, outcomes, periods_of, rate
from simulations.traffic import Population, Scenario, looks

CFG = load_ab_config()


def _aa(name: str, population: Population, decisions: int) -> Scenario:
    return Scenario(name, population, model_a=HEALTHY, model_b=HEALTHY, decisions=decisions)


@pytest.mark.parametrize(("scenario", "runs"), [
    (_aa("40 users, heavy-tailed", Population(40, 1.5), 5000), 400),
    (_aa("40 users, equal activity", Population(40, 0.0), 5000), 400),
    (_aa("5k users, heavy-tailed", Population(5000, 1.5), 30_000), 200),
    (replace(_aa("late labels", Population(2000, 1.5, duration_days=90.0), 30_000),
             label_delay_days=20.0, fraud_label_share=0.9, maturity_days=30.0), 200),
])
def test_aa_experiments_raise_no_false_alarms(scenario: Scenario, runs: int) -> None:
    res = outcomes(scenario, runs, CFG, seed0=1000)
    assert rate(o.srm for o in res) <= 0.005
    assert rate(o.verdict in ("challenger_better", "challenger_worse") for o in res) <= 0.05
    assert rate(o.rollback is not None for o in res) <= 0.01
    # The decision-level rules, on the same looks, alarm most of the time.
    assert rate(o.before_srm for o in res) > 0.3
    assert rate(o.before_rollback for o in res) > 0.3


def test_a_recall_gap_is_found_at_100k_users() -> None:
    scenario = Scenario("0.80 vs 0.70", Population(100_000, 1.0), model_a=HEALTHY,
                        model_b=replace(HEALTHY, recall=0.70), decisions=1_000_000)
    res = outcomes(scenario, 10, CFG, seed0=2000)  # the table has 100 runs of it
    assert rate(o.verdict == "challenger_worse" for o in res) >= 0.9
    assert rate(o.verdict == "challenger_better" for o in res) == 0


def test_a_45_55_assignment_fault_is_flagged() -> None:
    scenario = Scenario("45/55", Population(5000, 1.5), model_a=HEALTHY, model_b=HEALTHY,
                        true_share=0.45, decisions=100_000)
    res = outcomes(scenario, 30, CFG, seed0=3000, expected_share=0.5)
    assert rate(o.srm for o in res) >= 0.9
    assert all(o.rollback is None or o.rollback.startswith("sample-ratio") for o in res)


def test_a_challenger_erroring_on_5_percent_is_rolled_back_within_about_1000_rows() -> None:
    scenario = Scenario("errors", Population(5000, 1.5), model_a=HEALTHY,
                        model_b=replace(HEALTHY, error_rate=0.05), decisions=100_000)
    res = outcomes(scenario, 20, CFG, seed0=4000)
    assert all(o.rollback is not None and "error rate" in o.rollback for o in res)
    assert statistics.median(o.rollback_at for o in res if o.rollback_at) <= 1500


def test_a_challenger_flagging_3x_is_rolled_back() -> None:
    scenario = Scenario("flags 3x", Population(20_000, 1.0), model_a=HEALTHY,
                        model_b=replace(HEALTHY, false_positive_rate=0.045), decisions=200_000)
    res = outcomes(scenario, 20, CFG, seed0=5000)
    assert rate(o.rollback is not None and "flag rate" in o.rollback for o in res) >= 0.9


def test_the_ledger_aggregates_what_the_simulation_judges(tmp_path) -> None:
    """The service reads ArmPeriods from SQL, the simulation from numpy: the same numbers."""
    scenario = Scenario("small", Population(300, 1.5, duration_days=60.0), model_a=HEALTHY,
                        model_b=HEALTHY, decisions=3000, looks=1, label_legit=True)
    look = list(looks(scenario, seed=5))[-1]
    arms = {"model_a": ArmModel("model_a", "a:1", 0.5, {}),
            "model_b": ArmModel("model_b", "b:1", 0.5, {})}
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        exp = Experiment(CFG, arms, ledger)
        state = exp.state
        for arm, users in look.arms.items():
            for i in range(len(users.decisions)):
                uid = f"{arm}-{i}"
                cells = [(users.tp[i], 0.9, True), (users.fp[i], 0.9, False),
                         (users.fn[i], 0.1, True), (users.tn[i], 0.1, False)]
                unlabelled_flags = users.flags[i] - users.tp[i] - users.fp[i]
                unlabelled = users.decisions[i] - sum(int(c[0]) for c in cells)
                for count, proba, label in cells:
                    for out in exp.record([uid] * int(count), [arm] * int(count),
                                          [proba] * int(count), 1.0, "predict", state):
                        ledger.label(out.request_id, label)
                probas = [0.9] * int(unlabelled_flags) + [0.1] * int(unlabelled -
                                                                    unlabelled_flags)
                exp.record([uid] * len(probas), [arm] * len(probas), probas, 1.0, "predict",
                           state)
                exp.ledger.record_errors([ScoringError(exp.id, state.period, arm, uid)]
                                         * int(users.errors[i]))
        from_sql = ledger.aggregates(exp.id)[state.period]
    from_numpy = periods_of(look)[1]
    for arm in ("model_a", "model_b"):
        a, b = from_sql[arm], from_numpy[arm]
        assert (a.users, a.decisions, a.flagged, a.errors, a.tp, a.fp, a.fn, a.tn) == (
            b.users, b.decisions, b.flagged, b.errors, b.tp, b.fp, b.fn, b.tn)
        for metric in ("flag", "error", "recall", "precision"):
            assert np.allclose(list(getattr(a, metric).__getattribute__(f) for f in
                                    ("clusters", "sx", "sy", "sxx", "syy", "sxy")),
                               list(getattr(b, metric).__getattribute__(f) for f in
                                    ("clusters", "sx", "sy", "sxx", "syy", "sxy")))

"""Selective labels through the service's code, on fixed seeds: the issue's failure reproduced
(label-blind paired verdicts on an A/A pair), the new rules' answer, and the direction of the
main results of `python -m simulations.labels` (not the full table)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fraud.stats.labels import label_rates
from simulations import cohorts, label_traffic
from simulations.label_runs import DIFFERENT, Outcome, run
from simulations.labels import main, rows
from simulations.population import World
from simulations.traffic import LabelMechanics

# Many frauds, little difference between cards: the label-blind bias shows quickly.
DENSE = World(users=4000, txns_per_user=20.0, compromised_share=0.3,
              fraud_share_compromised=0.1, recall_concentration=1000.0)
ISSUE = LabelMechanics(approved_fraud=0.9, declined_fraud=0.3, declined_legit=0.3)


def _paired(setup: cohorts.Setup, seed: int) -> Outcome:
    return run(cohorts.looks(replace(setup, shadow=True, share=0.0), seed), True)


def test_the_issue_label_blind_paired_verdicts_on_an_aa_pair_are_biased() -> None:
    """A/A (recall 0.70 both, 85% agreement), the champion deciding, declined frauds labelled
    30% and approved ones 90%: today's paired test says 'challenger_better' (B's extra catches
    are among approvals, fully labelled; A's among declines, 30% labelled). The new rule says
    label_bias instead, and nothing is promoted."""
    setup = cohorts.Setup(world=DENSE, labels=ISSUE, looks=10)
    res = [_paired(setup, seed) for seed in range(8)]
    assert sum(o.before == "challenger_better" for o in res) >= 7
    assert all(o.label_bias for o in res)
    assert not any(o.verdict in DIFFERENT for o in res)
    assert not any(o.promoted for o in res)


def test_with_exploration_an_aa_pair_gets_no_verdict_and_a_better_one_is_found() -> None:
    aa = cohorts.Setup(world=DENSE, labels=ISSUE, exploration=0.05, looks=10)
    res = [_paired(aa, seed) for seed in range(8)]
    assert not any(o.verdict in DIFFERENT or o.promoted or o.rollback for o in res)
    better = replace(aa, world=replace(DENSE, recall_b=0.85))
    found = [_paired(better, seed) for seed in range(8)]
    assert sum(o.promoted == "paired" for o in found) >= 6


def test_a_challenger_declining_3x_as_many_legit_customers_is_rolled_back() -> None:
    plan = label_traffic.Plan(world=World(users=20_000, fp_multiplier=3.0), decisions=100_000,
                              looks=15)
    res = [run(label_traffic.looks(plan, seed), False) for seed in range(4)]
    # 95.5% of 200 runs in the table: here at least 3 of these 4 seeds, by the harm rule
    assert sum(o.rollback == "legit declines" for o in res) >= 3


def test_both_generators_label_alike() -> None:
    """The per-user sums drawn directly and built from transactions agree on the label
    rates by decision (the cohort draws use the label probabilities as 'by maturity')."""
    w = World(users=3000, txns_per_user=30.0)
    mech = LabelMechanics(chargeback_delay_days=0.1, review_delay_days=0.1)
    coh = list(cohorts.looks(cohorts.Setup(world=w, labels=mech, looks=1), 3))[-1]
    tim = list(label_traffic.looks(label_traffic.Plan(world=w, labels=mech,
                                                      decisions=90_000, looks=1), 3))[-1]
    for arm in ("model_a", "model_b"):
        a = label_rates(getattr(coh.labels, arm))["declined"]["value"]
        b = label_rates(getattr(tim.labels, arm))["declined"]["value"]
        assert a == pytest.approx(b, abs=0.04)
    rate = [x.labelled_frauds / x.decisions for x in (coh, tim)]
    assert rate[0] == pytest.approx(rate[1], rel=0.35)  # clustered: frauds vary a lot


def test_quick_table_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--runs", "1", "--processes", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") == sum(len(r.modes) for r in rows(quick=True))  # row x mode
    assert np.isfinite(len(out))

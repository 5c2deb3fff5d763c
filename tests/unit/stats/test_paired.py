"""Shadow scoring and the paired comparison: the router's two columns, the ledger's paired
rows (both backends), the statistics on constructed users, and the A/A false-difference rate
through the same code (simulations.paired)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ledger_support import IDENTITY

from fraud.config import ABConfig, ShadowConfig, StatsSettings
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.serving.router import failed_rows, score_pair
from fraud.stats.aggregates import FIELDS, PairedUsers
from fraud.stats.paired import Costs, Ratio, compare, difference, same_flag_rate
from fraud.stats.sequential import Memory
from fraud.store.writer import Ledger
from simulations.paired import World, run

ARMS = {"model_a": ArmModel("model_a", IDENTITY[1], 0.5, {}),
        "model_b": ArmModel("model_b", IDENTITY[2], 0.3, {})}


def users(**cols: list[float]) -> PairedUsers:
    size = len(next(iter(cols.values())))
    return PairedUsers(**{f: np.array(cols.get(f, [0.0] * size), dtype=float) for f in FIELDS})


def shadow_experiment(ledger: Ledger) -> Experiment:
    """Shadow on, with verdicts allowed from a handful of users."""
    return Experiment(ABConfig(shadow=ShadowConfig(enabled=True), statistics=StatsSettings(
        min_labelled_per_arm=1, min_users_per_arm=2, min_fraud_users_per_arm=2)), ARMS, ledger)


def test_score_pair_puts_the_arms_model_first_and_keeps_a_failing_shadow_to_its_column() -> None:
    rows = np.array([[0, 1.0], [1, 2.0], [0, 3.0]])
    a, b = (lambda x: x[:, 0] / 10), (lambda x: x[:, 0] / 100)
    assert np.allclose(score_pair([a, b], rows), [[0.1, 0.01], [0.02, 0.2], [0.3, 0.03]])

    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("challenger down")

    out = score_pair([a, broken], rows)
    assert failed_rows(out) == [1]  # only the row model_b decides fails
    assert np.isnan(out[0, 1]) and np.isnan(out[2, 1]) and out[0, 0] == pytest.approx(0.1)


def test_difference_is_the_delta_method_over_users() -> None:
    rng = np.random.default_rng(3)
    den = rng.integers(0, 6, 50).astype(float)
    a, b = rng.binomial(den.astype(int), 0.6), rng.binomial(den.astype(int), 0.7)
    est, var = difference(Ratio(a, den), Ratio(b, den))
    ra, rb, s = a.sum() / den.sum(), b.sum() / den.sum(), den.sum()
    z = ((b - rb * den) - (a - ra * den)) / s
    k = np.count_nonzero(den)
    assert est == pytest.approx(rb - ra)
    assert var == pytest.approx(k / (k - 1) * np.sum(z[den > 0] ** 2))


def test_compare_on_constructed_users() -> None:
    u = users(n=[10, 10], mature=[10, 10], fraud=[2, 2], tp_a=[1, 1], tp_b=[2, 2],
              tp_both=[1, 1], fp_a=[1, 0], fp_b=[0, 0], fraud_amount=[100, 300],
              caught_amount_a=[50, 100], caught_amount_b=[100, 300], fp_amount_a=[20, 0])
    recall = compare(u, "recall", Costs(), 1.96)
    assert recall["model_a"]["value"] == 0.5 and recall["model_b"]["value"] == 1.0
    assert recall["difference"]["value"] == 0.5
    money = compare(u, "amount_recall", Costs(), 1.96)
    assert money["model_a"]["value"] == pytest.approx(150 / 400)
    loss = compare(u, "expected_loss", Costs(decline_fixed=5, decline_share=0.5), 1.96)
    # model A: missed 250 + one decline (5 + 10) over 20 mature: 13.25 a transaction
    assert loss["model_a"]["value"] == pytest.approx(1000 * 265 / 20)
    assert loss["model_b"]["value"] == 0.0 and loss["difference"]["value"] < 0


def test_same_flag_rate_uses_the_champions_rate() -> None:
    pa = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.05, 0.6, 0.2, 0.1])
    pb = np.array([0.2, 0.95, 0.9, 0.1, 0.1, 0.3, 0.2, 0.1, 0.1, 0.1])
    fa = (pa >= 0.5).astype(float)  # champion flags 3 of 10
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    out = same_flag_rate(np.column_stack([pa, pb, fa, np.ones(10), y]), min_frauds=3)
    assert out is not None and out["flag_rate"] == pytest.approx(0.3)
    assert out["recall_a"] == pytest.approx(2 / 3) and out["recall_b"] == pytest.approx(2 / 3)
    hidden = same_flag_rate(np.column_stack([pa, pb, fa, np.ones(10), y]), min_frauds=4)
    assert hidden is not None and hidden["recall_a"] is None
    assert hidden["hidden"] == "3 mature labelled frauds, fewer than 4"


def test_shadow_decisions_reach_the_ledger_and_the_paired_block(ledger: Ledger) -> None:
    exp = shadow_experiment(ledger)
    ids = [f"u{i}" for i in range(6)]
    arms = [exp.route(u) for u in ids]
    proba = [0.6, 0.1, 0.7, 0.2, 0.9, 0.05]  # the arm model's scores
    shadow = [0.2, 0.4, math.nan, 0.1, 0.8, 0.01]  # the other model's (row 2: it failed)
    out, done = exp.decide(ids, arms, proba, 3.0, "predict", amounts=[10, 20, 30, 40, 50, 60],
                           shadow=shadow)
    done.result(timeout=5)
    assert all(not hasattr(p, "shadow_probability") for p in out)  # never in the response
    stored = [ledger.lookup(p.request_id) for p in out]
    assert [d.shadow_probability for d in stored] == [0.2, 0.4, None, 0.1, 0.8, 0.01]
    assert stored[0].amount == 10 and stored[2].shadow_is_fraud is None
    for d in stored:  # the shadow decision is the other model's, at its own threshold
        if d.shadow_probability is not None:
            shadow_arm = "model_b" if d.arm == "model_a" else "model_a"
            assert d.shadow_is_fraud == (d.shadow_probability >= ARMS[shadow_arm].threshold)
    for p in out:
        ledger.label(p.request_id, True)
    body, _, state = exp.report()
    block = body["paired"]
    assert block["transactions"] == 5 and block["frauds"] == 5 and block["labelled"] == 5
    flags = {"model_a": [], "model_b": []}
    for d in stored:
        if d.shadow_is_fraud is None:
            continue
        flags[d.arm].append(d.is_fraud)
        flags["model_b" if d.arm == "model_a" else "model_a"].append(d.shadow_is_fraud)
    assert block["recall"]["model_a"]["value"] == pytest.approx(np.mean(flags["model_a"]))
    assert block["recall"]["model_b"]["value"] == pytest.approx(np.mean(flags["model_b"]))
    disagree = sum(a != b for a, b in zip(flags["model_a"], flags["model_b"], strict=True))
    assert block["disagreement_rate"]["value"] == pytest.approx(disagree / 5)
    listed = exp.disagreements(100)
    assert len(listed) == disagree and all(d["label"] is True for d in listed)
    assert [d["ts"] for d in listed] == sorted((d["ts"] for d in listed), reverse=True)
    assert Memory.from_json(state.paired).looks == 1  # this look, not yet stored


def test_paired_memory_is_folded_into_the_shared_state(ledger: Ledger) -> None:
    exp = shadow_experiment(ledger)
    ids = [f"v{i}" for i in range(40)]
    arms = [exp.route(u) for u in ids]
    a_score, b_score = 0.9, 0.0  # model A catches every fraud, model B none
    decider = [a_score if arm == "model_a" else b_score for arm in arms]
    other = [b_score if arm == "model_a" else a_score for arm in arms]
    out, done = exp.decide(ids, arms, decider, 1.0, "predict", shadow=other)
    done.result(timeout=5)
    for p in out:
        ledger.label(p.request_id, True)
    exp.enforce_guardrails()
    memory = Memory.from_json(exp.refresh().paired)
    # Model A caught all 40 frauds, model B none: a clear verdict.
    assert memory.looks == 1 and memory.verdict == "challenger_worse"


def test_paired_aa_false_difference_rate_under_continuous_looks() -> None:
    """Two equally good models (recall 0.70, 85% agreement), 40 looks, 100 runs: the paired
    test's false "better"/"worse" rate stays within its 5% level (binomial slack: <= 10)."""
    s = StatsSettings()
    wrong = sum(run(World(users=8000), seed, s)["paired"][0] in
                ("challenger_better", "challenger_worse") for seed in range(100))
    assert wrong <= 10, wrong


def test_a_bad_challenger_is_stopped_in_a_pure_shadow_phase(ledger: Ledger) -> None:
    """challenger_share 0 with shadow on: no customer sees model B, yet its flag rate on the
    same transactions (5x the champion's) rolls it back."""
    from fraud.config import GuardrailConfig

    cfg = ABConfig(challenger_share=0.0, shadow=ShadowConfig(enabled=True),
                   guardrails=GuardrailConfig(min_users=20, min_decisions=100))
    exp = Experiment(cfg, ARMS, ledger)
    rng = np.random.default_rng(5)
    for batch in range(4):
        ids = [f"s{batch}-{i % 150}" for i in range(200)]
        arms = [exp.route(u) for u in ids]
        assert set(arms) == {"model_a"}
        a_flags = rng.random(200) < 0.05
        b_flags = rng.random(200) < 0.25
        _, done = exp.decide(ids, arms, np.where(a_flags, 0.9, 0.1).tolist(), 1.0, "predict",
                             shadow=np.where(b_flags, 0.9, 0.1).tolist())
        done.result(timeout=5)
    body, rolled = exp.enforce_guardrails()
    assert rolled, body["experiment"]["guardrail_breaches"]
    assert "same transactions (shadow)" in exp.state.rollback_reason


def test_the_paired_flag_rate_guardrail_stays_quiet_for_an_equal_challenger() -> None:
    from fraud.config import GuardrailConfig
    from fraud.experiment.guardrails import paired_flag_rate_breach

    rng = np.random.default_rng(11)
    n = rng.integers(1, 30, 2000).astype(float)
    u = users(n=n.tolist(), flag_a=rng.binomial(n.astype(int), 0.05).tolist(),
              flag_b=rng.binomial(n.astype(int), 0.05).tolist())
    assert paired_flag_rate_breach(u, GuardrailConfig()) is None
    bad = users(n=n.tolist(), flag_a=rng.binomial(n.astype(int), 0.05).tolist(),
                flag_b=rng.binomial(n.astype(int), 0.15).tolist())
    assert "shadow" in (paired_flag_rate_breach(bad, GuardrailConfig()) or "")

"""Simulated traffic (simulations.traffic): shapes, cumulativity, population, models, labels, seeds.

Every test uses fixed seeds, so the figures are the same on every run.
"""

from __future__ import annotations

import numpy as np

from fraud.assignment import assign
from simulations.traffic import ArmUsers, Look, ModelBehaviour, Population, Scenario, looks

FIELDS = ("decisions", "flags", "errors", "labelled", "tp", "fp", "fn", "tn")
# Small populations with equal activity: every user is exposed from the first look, so the
# per-user arrays of successive looks are aligned (same users, same order).
DENSE = Population(users=400, activity_sigma=0.0, compromised_share=0.1)


def run(seed: int = 0, **kw) -> list[Look]:
    return list(looks(Scenario(name="test", **kw), seed))


def total(look: Look, field: str) -> int:
    return sum(int(getattr(arm, field).sum()) for arm in look.arms.values())


def both(look: Look) -> ArmUsers:
    """Both arms concatenated (model_a users first)."""
    a, b = look.arms["model_a"], look.arms["model_b"]
    return ArmUsers(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in FIELDS))


def test_arrays_aligned_non_negative_and_totals_match_rows_seen():
    ls = run(decisions=20_000, looks=10, label_delay_days=3.0, maturity_days=5.0)
    assert len(ls) == 10
    assert [lk.t_days for lk in ls] == [28.0 * k / 10 for k in range(1, 11)]
    assert ls[-1].decisions_seen == 20_000
    for lk in ls:
        assert set(lk.arms) == {"model_a", "model_b"}
        for arm in lk.arms.values():
            arrays = [getattr(arm, f) for f in FIELDS]
            assert {a.dtype for a in arrays} == {np.dtype(np.int64)}
            assert len({a.shape for a in arrays}) == 1
            assert all((a >= 0).all() for a in arrays)
            assert ((arm.decisions + arm.errors) > 0).all()  # only exposed users
            assert (arm.flags <= arm.decisions).all()
            assert (arm.labelled <= arm.decisions).all()
            assert (arm.tp + arm.fp + arm.fn + arm.tn <= arm.decisions).all()
        assert total(lk, "decisions") + total(lk, "errors") == lk.decisions_seen


def test_cumulative_per_user():
    ls = run(population=DENSE, decisions=40_000, looks=10, label_delay_days=2.0,
             maturity_days=None, model_a=ModelBehaviour(error_rate=0.05))
    prev = both(ls[0])
    assert len(prev.decisions) == DENSE.users
    for lk in ls[1:]:
        cur = both(lk)
        for f in ("decisions", "flags", "errors", "labelled", "tp", "fn", "fp", "tn"):
            assert (getattr(cur, f) >= getattr(prev, f)).all(), f
        prev = cur
    # With maturity, a fraud row first counted as legit can later flip to tp/fn when its
    # label arrives: the mature total and the labelled fraud still never shrink.
    ls = run(population=DENSE, decisions=40_000, looks=10, label_delay_days=20.0,
             maturity_days=3.0)
    prev = both(ls[0])
    for lk in ls[1:]:
        cur = both(lk)
        assert (cur.tp + cur.fp + cur.fn + cur.tn >= prev.tp + prev.fp + prev.fn + prev.tn).all()
        assert (cur.tp + cur.fn >= prev.tp + prev.fn).all()
        prev = cur


def test_split_follows_the_real_assignment_and_true_share():
    pop = Population(users=3000, activity_sigma=0.0)
    for seed, share in [(1, 0.5), (2, 0.3)]:
        last = run(seed, population=pop, decisions=60_000, looks=2, true_share=share)[-1]
        n_b = len(last.arms["model_b"].decisions)
        assert n_b + len(last.arms["model_a"].decisions) == pop.users
        expected = sum(assign(f"u{i}", f"sim-{seed}", share) == "model_b"
                       for i in range(pop.users))
        assert n_b == expected
        assert abs(n_b / pop.users - share) < 0.03


def test_heavy_tail_of_activity():
    def top_1pct_share(sigma: float) -> float:
        pop = Population(activity_sigma=sigma)
        d = both(run(population=pop, looks=1)[-1])
        rows = np.sort(d.decisions + d.errors)[::-1]
        return rows[: pop.users // 100].sum() / rows.sum()

    assert top_1pct_share(1.5) > 0.15
    assert top_1pct_share(0.0) < 0.03


def test_fraud_is_concentrated_on_compromised_users():
    # Instant labels and no maturity: tp + fn is each user's fraud count.
    pop = Population(activity_sigma=0.0, compromised_share=0.02)
    d = both(run(population=pop, label_delay_days=0.0, maturity_days=None, looks=1)[-1])
    fraud = d.tp + d.fn
    assert fraud.sum() > 500
    assert (fraud > 0).mean() < 0.04  # ~2% compromised plus a few stray cases
    heavy = fraud >= 0.25 * d.decisions  # compromised users: about half their rows
    assert fraud[heavy].sum() > 0.9 * fraud.sum()
    assert abs(fraud[heavy].sum() / d.decisions[heavy].sum() - 0.5) < 0.05


def test_recall_over_labelled_fraud_matches_the_models():
    # ~500 compromised cards per arm: the per-card spread of catch rates averages out.
    pop = Population(users=10_000, activity_sigma=0.0, compromised_share=0.1)
    last = run(population=pop, label_delay_days=0.0, maturity_days=None, looks=1,
               model_a=ModelBehaviour(recall=0.8), model_b=ModelBehaviour(recall=0.5))[-1]
    for name, recall in [("model_a", 0.8), ("model_b", 0.5)]:
        arm = last.arms[name]
        assert abs(arm.tp.sum() / (arm.tp.sum() + arm.fn.sum()) - recall) < 0.05


def test_small_concentration_makes_catching_consistent_per_card():
    def polarised(k: float) -> float:
        """Share of users with >= 10 fraud rows caught < 10% or > 90% of the time."""
        model = ModelBehaviour(recall=0.5, recall_concentration=k)
        d = both(run(population=DENSE, decisions=40_000, looks=1, label_delay_days=0.0,
                     maturity_days=None, model_a=model, model_b=model)[-1])
        fraud = d.tp + d.fn
        rate = d.tp[fraud >= 10] / fraud[fraud >= 10]
        return float(((rate < 0.1) | (rate > 0.9)).mean())

    assert polarised(0.1) > 0.7
    assert polarised(1000.0) < 0.05


def test_label_delay_is_respected():
    kw = dict(maturity_days=None, looks=50)
    instant, delayed = run(label_delay_days=0.0, **kw), run(label_delay_days=10.0, **kw)
    # Same seed: same traffic; with instant labels every fraud decision seen is labelled.
    early = 4  # t = 2.8 days: on average ~13% of the fraud seen is labelled with a 10-day mean
    fraud_seen = total(instant[early], "labelled")
    assert fraud_seen > 50
    assert total(delayed[early], "labelled") < 0.25 * fraud_seen
    assert total(delayed[-1], "labelled") < total(instant[-1], "labelled")
    for lk in instant + delayed:
        d = both(lk)
        assert (d.tp + d.fp + d.fn + d.tn == d.labelled).all()  # no maturity: labelled only
        assert d.fp.sum() == d.tn.sum() == 0  # only fraud is labelled


def test_fraud_label_share():
    full = run(label_delay_days=0.0, maturity_days=None, looks=1)[-1]
    half = run(label_delay_days=0.0, maturity_days=None, looks=1, fraud_label_share=0.5)[-1]
    assert abs(total(half, "labelled") / total(full, "labelled") - 0.5) < 0.08


def test_maturity_counts_old_unlabelled_decisions_as_legit():
    pop = Population(duration_days=60.0)
    ls = run(population=pop, label_delay_days=0.0, maturity_days=30.0, looks=4)
    for lk in ls[:2]:  # t <= 30: nothing unlabelled is old enough yet
        assert total(lk, "fp") + total(lk, "tn") == 0
    last = ls[-1]
    legit = total(last, "decisions") - total(last, "tp") - total(last, "fn")
    assert abs((total(last, "fp") + total(last, "tn")) / legit - 0.5) < 0.02
    assert total(last, "fp") > 0
    # With explicit legit labels (instant) every decision is mature even without maturity.
    d = both(run(label_delay_days=0.0, label_legit=True, maturity_days=None, looks=1)[-1])
    assert (d.tp + d.fp + d.fn + d.tn == d.decisions).all()
    assert (d.labelled == d.decisions).all()


def test_errors_are_neither_decisions_nor_labelled():
    last = run(label_delay_days=0.0, label_legit=True, maturity_days=None, looks=1,
               model_a=ModelBehaviour(error_rate=0.1),
               model_b=ModelBehaviour(error_rate=1.0))[-1]
    a, b = last.arms["model_a"], last.arms["model_b"]
    assert abs(a.errors.sum() / (a.errors.sum() + a.decisions.sum()) - 0.1) < 0.01
    assert (a.labelled == a.decisions).all()
    assert b.errors.sum() > 0
    assert b.decisions.sum() == b.flags.sum() == b.labelled.sum() == 0
    assert (b.tp + b.fp + b.fn + b.tn == 0).all()


def test_same_seed_same_output_different_seed_different_split():
    kw = dict(population=Population(users=3000, activity_sigma=0.0), decisions=60_000, looks=3)
    first, again, other = run(7, **kw), run(7, **kw), run(8, **kw)
    for x, y in zip(first, again, strict=True):
        assert (x.t_days, x.decisions_seen) == (y.t_days, y.decisions_seen)
        for name in x.arms:
            for f in FIELDS:
                assert np.array_equal(getattr(x.arms[name], f), getattr(y.arms[name], f))
    assert len(first[-1].arms["model_b"].decisions) != len(other[-1].arms["model_b"].decisions)
    split = [{i for i in range(3000) if assign(f"u{i}", f"sim-{s}", 0.5) == "model_b"}
             for s in (7, 8)]
    assert len(split[0] ^ split[1]) > 1000  # about half the users change arm


"""Users arriving over looks, each with all of their (mature) transactions: the fast generator.

For the rows of `python -m simulations.labels` that need many frauds, simulating each
transaction is too slow; but a user's per-user sums are sums of conditionally independent
transactions given the user's parameters (simulations/population.py), so they can be drawn
directly: counts from multinomials over the (deciding flags, other flags) cells, then
binomial thinning for exploration and for labels (simulations/traffic.py's LabelMechanics,
its probabilities taken as "by maturity"). Statistically the same per-user sums as building
them from rows (tests/unit/simulations/test_label_simulation.py checks that both generators
agree), at a cost per user, not per transaction. Users arrive in a random order; look k sees
the first k/looks of them, every decision mature. One allocation period: `simulations.label_traffic`
has time, maturity and the ramp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from fraud.stats.aggregates import FIELDS, ArmPeriod, PairedUsers
from fraud.stats.labels import LABEL_FIELDS, ArmLabels, LabelUsers
from fraud.stats.periods import UserPeriods
from simulations.population import World, cells, draw_people
from simulations.traffic import LabelMechanics


@dataclass(frozen=True)
class Setup:
    """One simulated experiment: world, label mechanics, exploration, mode and looks."""

    world: World = field(default_factory=World)
    labels: LabelMechanics = field(default_factory=LabelMechanics)
    exploration: float = 0.0  # propensity of a would-be decline to be approved instead
    shadow: bool = False  # the other model scores every transaction (paired mode)
    share: float = 0.5  # challenger's share of users (0: pure shadow, the champion decides)
    looks: int = 20


@dataclass
class LookInputs:
    """What one look of the service reads, as the ledger would give it."""

    periods: dict[int, dict[str, ArmPeriod]]
    user_periods: UserPeriods
    labels: ArmLabels
    paired: PairedUsers | None
    decisions: int  # decisions so far, both arms
    challenger_decisions: int
    labelled_frauds: int  # labels saying fraud so far (chargebacks and reviews)
    period: int = 1
    share: float = 0.5


def _binom(rng: np.random.Generator, n: np.ndarray, p: float) -> np.ndarray:
    return rng.binomial(n, p) if p > 0 else np.zeros_like(n)


def draw(setup: Setup, seed: int) -> dict[str, np.ndarray]:
    """Per-user sums of the whole experiment (arrays over users, in arrival order)."""
    w, mech, eps = setup.world, setup.labels, setup.exploration
    rng = np.random.default_rng(seed)
    people = draw_people(w, rng)
    n = 1 + rng.poisson((w.txns_per_user - 1.0) * people.weight / people.weight.mean())
    frauds = rng.binomial(n, people.fraud_rate)
    fcell, lcell = cells(w, people)
    arm_b = rng.random(w.users) < setup.share
    # (A, B) cells -> (deciding, other) cells: swap "A only" and "B only" where B decides.
    order = np.where(arm_b[:, None], [0, 2, 1, 3], [0, 1, 2, 3])
    f = np.take_along_axis(rng.multinomial(frauds, fcell), order, axis=1)
    g = np.take_along_axis(rng.multinomial(n - frauds, lcell), order, axis=1)
    ef, eg = _binom(rng, f[:, :2], eps), _binom(rng, g[:, :2], eps)  # explored (D flags)
    cb = _binom(rng, f[:, 2:], mech.approved_fraud)  # chargebacks, model-approved
    cbx = _binom(rng, ef, mech.approved_fraud)  # chargebacks, explored
    rev = _binom(rng, f[:, :2] - ef, mech.declined_fraud)  # reviews of declined frauds
    revl = _binom(rng, g[:, :2] - eg, mech.declined_legit)
    inv = 1.0 / eps if eps > 0 else 0.0
    flagged = f[:, :2].sum(1) + g[:, :2].sum(1)
    shadow = 1.0 if setup.shadow else 0.0
    out = {
        "n": n, "flagged": flagged, "explored": ef.sum(1) + eg.sum(1),
        "labelled_declined": rev.sum(1) + revl.sum(1),
        "labelled_approved": cb.sum(1) + cbx.sum(1), "fraud_approved": cb.sum(1),
        "fraud_explored_w": cbx.sum(1) * inv, "explored_w": (ef.sum(1) + eg.sum(1)) * inv,
        "fraud_declined_labelled": rev.sum(1),
        "other_flagged": shadow * (f[:, 0] + f[:, 2] + g[:, 0] + g[:, 2]),
        "other_fraud_approved": shadow * cb[:, 0],
        "other_fraud_explored_w": shadow * cbx[:, 0] * inv,
        "other_flagged_explored_w": shadow * (ef[:, 0] + eg[:, 0]) * inv,
    }
    # Labelled fraud per (deciding, other) cell, back in (A, B) order for the paired rows.
    lab_do = np.stack([rev[:, 0] + cbx[:, 0], rev[:, 1] + cbx[:, 1], cb[:, 0], cb[:, 1]], 1)
    lab = np.take_along_axis(lab_do, order, axis=1)  # the swap is its own inverse
    flags_ab = np.take_along_axis(f + g, order, axis=1)
    tp = lab_do[:, 0] + lab_do[:, 1]
    out.update(
        arm_b=arm_b, tp=tp, fn=cb.sum(1), fp=flagged - tp,
        tn=n - flagged - cb.sum(1), labelled=tp + cb.sum(1) + revl.sum(1),
        p_flag_a=flags_ab[:, 0] + flags_ab[:, 1], p_flag_b=flags_ab[:, 0] + flags_ab[:, 2],
        p_disagree=flags_ab[:, 1] + flags_ab[:, 2], p_fraud=lab.sum(1),
        p_tp_a=lab[:, 0] + lab[:, 1], p_tp_b=lab[:, 0] + lab[:, 2], p_tp_both=lab[:, 0])
    return {k: np.asarray(v, dtype=np.float64) if k != "arm_b" else v for k, v in out.items()}


def label_users(d: dict[str, np.ndarray], idx: np.ndarray) -> LabelUsers:
    return LabelUsers(**{k: d[k][idx] for k in LABEL_FIELDS}, ids=idx)


def paired_users(d: dict[str, np.ndarray], upto: int) -> PairedUsers:
    z = np.zeros(upto)
    cols = {k: z for k in FIELDS}
    cols.update(n=d["n"][:upto], mature=d["n"][:upto], disagree=d["p_disagree"][:upto],
                flag_a=d["p_flag_a"][:upto], flag_b=d["p_flag_b"][:upto],
                fraud=d["p_fraud"][:upto], tp_a=d["p_tp_a"][:upto], tp_b=d["p_tp_b"][:upto],
                tp_both=d["p_tp_both"][:upto],
                fp_a=d["p_flag_a"][:upto] - d["p_tp_a"][:upto],
                fp_b=d["p_flag_b"][:upto] - d["p_tp_b"][:upto])
    return PairedUsers(**cols)


def inputs_at(d: dict[str, np.ndarray], upto: int, setup: Setup) -> LookInputs:
    """The service's inputs once the first `upto` users have arrived."""
    idx = np.arange(upto)
    arms = {"model_a": idx[~d["arm_b"][:upto]], "model_b": idx[d["arm_b"][:upto]]}
    periods: dict[int, dict[str, ArmPeriod]] = {1: {}}
    for arm, i in arms.items():
        if len(i):
            periods[1][arm] = ArmPeriod.from_users(
                d["n"][i], d["flagged"][i], np.zeros(len(i)), d["labelled"][i], d["tp"][i],
                d["fp"][i], d["fn"][i], d["tn"][i])
    up = UserPeriods(period=np.ones(upto, np.int64),
                     arm=np.where(d["arm_b"][:upto], "model_b", "model_a"), user=idx,
                     **{k: d[src][:upto] for k, src in (
                         ("decisions", "n"), ("flagged", "flagged"), ("labelled", "labelled"),
                         ("tp", "tp"), ("fp", "fp"), ("fn", "fn"), ("tn", "tn"))},
                     errors=np.zeros(upto))
    labels = ArmLabels(*(label_users(d, i) if len(i) else None for i in arms.values()),
                       exploring=setup.exploration > 0)
    return LookInputs(periods, up, labels, paired_users(d, upto) if setup.shadow else None,
                      int(d["n"][:upto].sum()), int(d["n"][arms["model_b"]].sum()),
                      int(d["p_fraud"][:upto].sum()), share=setup.share)


def looks(setup: Setup, seed: int) -> Iterator[LookInputs]:
    """The inputs of each look: after each 1/looks of the users."""
    d = draw(setup, seed)
    users = len(d["n"])
    for k in range(1, setup.looks + 1):
        yield inputs_at(d, users * k // setup.looks, setup)

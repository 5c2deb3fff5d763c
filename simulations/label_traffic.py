"""Transactions in time with decision-dependent labels, maturity and allocation periods.

The rows of `python -m simulations.labels` that need time (a ramp of shares, "within 100,000
decisions") draw every transaction: its time, user (lognormal activity), fraud (taken-over
cards), both models' flags (simulations/population.py), the deciding arm of its user in the
period it falls in (the service's hash, fraud.assignment; raising the share only moves users
from A to B), exploration, and a label time from simulations/traffic.py's LabelMechanics
(chargebacks for approvals, reviews for declines, with delays). At each look the per-user rows
are built as the ledger would build them:

- `ArmPeriod`s and `UserPeriods` per (period, arm, user): mature = labelled by now or older
  than the maturity window (the ledger's sweep), the model's decision as `flagged`;
- `LabelUsers` per deciding arm over decisions older than the maturity window;
- `PairedUsers` (shadow mode) over every decision both models scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from fraud.assignment import BUCKETS, bucket
from fraud.stats.aggregates import FIELDS, PairedUsers
from fraud.stats.labels import LABEL_FIELDS, ArmLabels, LabelUsers
from fraud.stats.periods import UserPeriods
from simulations.cohorts import LookInputs
from simulations.population import World, draw_people
from simulations.traffic import LabelMechanics, label_times


@dataclass(frozen=True)
class Plan:
    """One experiment in time: world, labels, exploration, mode, shares by period, volume."""

    world: World = field(default_factory=World)
    labels: LabelMechanics = field(default_factory=LabelMechanics)
    exploration: float = 0.0
    shadow: bool = False
    shares: tuple[tuple[float, float], ...] = ((0.0, 0.5),)  # (start day, share) per period
    decisions: int = 100_000
    duration_days: float = 90.0
    maturity_days: float = 30.0
    looks: int = 30


def _rows(plan: Plan, seed: int) -> dict[str, np.ndarray]:
    """Every transaction of the experiment, in time order."""
    w, m = plan.world, plan.decisions
    pop_rng, model_rng, label_rng = (np.random.default_rng(s)
                                     for s in np.random.SeedSequence(seed).spawn(3))
    people = draw_people(w, pop_rng)
    time = np.sort(pop_rng.uniform(0.0, plan.duration_days, m))
    user = pop_rng.choice(w.users, size=m, p=people.weight / people.weight.sum())
    fraud = pop_rng.random(m) < people.fraud_rate[user]
    h = model_rng.random(m)
    agree = np.where(fraud, w.agreement, w.fp_agreement)
    hb = np.where(model_rng.random(m) < agree, h, model_rng.random(m))
    fa = h < np.where(fraud, people.catch_a[user], people.fp_a[user])
    fb = hb < np.where(fraud, people.catch_b[user], people.fp_b[user])
    starts = np.array([s for s, _ in plan.shares])
    period = np.searchsorted(starts, time, side="right") - 1
    cuts = np.array([round(share * BUCKETS) for _, share in plan.shares])
    buckets = np.fromiter((bucket(f"u{i}", f"sim-{seed}") for i in range(w.users)), np.int64,
                          w.users)
    in_b = buckets[user] < cuts[period]
    dflag = np.where(in_b, fb, fa)
    explored = dflag & (model_rng.random(m) < plan.exploration)
    label_time = label_times(label_rng, time, fraud, dflag & ~explored, plan.labels)
    return {"time": time, "user": user, "fraud": fraud, "fa": fa, "fb": fb, "period": period,
            "in_b": in_b, "d": dflag, "o": np.where(in_b, fa, fb), "explored": explored,
            "label_time": label_time}


def _sums(key: np.ndarray, size: int, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.bincount(key, weights=v.astype(np.float64), minlength=size)
            for k, v in cols.items()}


def _label_users(r: dict[str, np.ndarray], upto: int, t: float, plan: Plan
                 ) -> dict[str, LabelUsers | None]:
    """Per deciding arm, the LabelUsers of the first `upto` rows (those mature by age at t)."""
    users, eps, shadow = plan.world.users, plan.exploration, plan.shadow
    d, o, x = r["d"][:upto], r["o"][:upto] & shadow, r["explored"][:upto]
    lab = r["label_time"][:upto] <= t
    y = r["fraud"][:upto] & lab
    inv = 1.0 / eps if eps > 0 else 0.0
    declined = d & ~x
    cols = {"n": np.ones(len(d)), "flagged": d, "explored": x,
            "labelled_declined": declined & lab, "labelled_approved": ~declined & lab,
            "fraud_approved": ~d & y, "fraud_explored_w": (x & y) * inv,
            "explored_w": x * inv, "fraud_declined_labelled": declined & y,
            "other_flagged": o, "other_fraud_approved": ~d & y & o,
            "other_fraud_explored_w": (x & y & o) * inv,
            "other_flagged_explored_w": (x & o) * inv}
    key = r["in_b"][:upto].astype(np.int64) * users + r["user"][:upto]
    sums = _sums(key, 2 * users, cols)
    out: dict[str, LabelUsers | None] = {}
    for i, arm in enumerate(("model_a", "model_b")):
        part = slice(i * users, (i + 1) * users)
        keep = np.flatnonzero(sums["n"][part] > 0)
        out[arm] = LabelUsers(**{k: sums[k][part][keep] for k in LABEL_FIELDS},
                              ids=keep) if len(keep) else None
    return out


def inputs_at(r: dict[str, np.ndarray], t: float, plan: Plan) -> LookInputs:
    """The service's inputs at time t."""
    users, n_periods = plan.world.users, len(plan.shares)
    s = int(np.searchsorted(r["time"], t, side="right"))
    v = {k: a[:s] for k, a in r.items()}
    labelled = v["label_time"] <= t
    yl = v["fraud"] & labelled
    mature = labelled | (t - v["time"] > plan.maturity_days)
    d = v["d"]
    key = (v["period"] * 2 + v["in_b"]) * users + v["user"]
    sums = _sums(key, 2 * n_periods * users, {
        "decisions": np.ones(s), "flagged": d, "labelled": labelled,
        "tp": mature & yl & d, "fp": mature & ~yl & d, "fn": mature & yl & ~d,
        "tn": mature & ~yl & ~d})
    rows = np.flatnonzero(sums["decisions"] > 0)
    pa, user = np.divmod(rows, users)
    up = UserPeriods(period=pa // 2 + 1, arm=np.where(pa % 2 == 1, "model_b", "model_a"),
                     user=user, errors=np.zeros(len(rows)),
                     **{k: c[rows] for k, c in sums.items()})
    periods = up.arm_periods()
    old = int(np.searchsorted(r["time"], t - plan.maturity_days, side="left"))
    arms = _label_users(r, old, t, plan)
    labels = ArmLabels(arms["model_a"], arms["model_b"], exploring=plan.exploration > 0)
    pairs = None
    if plan.shadow:
        fa, fb = v["fa"], v["fb"]
        p = _sums(v["user"], users, {
            "n": np.ones(s), "disagree": fa != fb, "flag_a": fa, "flag_b": fb,
            "mature": mature, "fraud": yl, "tp_a": yl & fa, "tp_b": yl & fb,
            "tp_both": yl & fa & fb, "fp_a": mature & ~yl & fa, "fp_b": mature & ~yl & fb})
        keep = p["n"] > 0
        z = np.zeros(int(keep.sum()))
        pairs = PairedUsers(**{k: p[k][keep] if k in p else z for k in FIELDS})
    current = int(np.searchsorted([st for st, _ in plan.shares], t, side="right")) - 1
    return LookInputs(periods, up, labels, pairs, s, int(v["in_b"].sum()), int(yl.sum()),
                      period=current + 1, share=plan.shares[current][1])


def looks(plan: Plan, seed: int) -> Iterator[LookInputs]:
    """The inputs at each of `looks` evenly spaced times."""
    r = _rows(plan, seed)
    for k in range(1, plan.looks + 1):
        yield inputs_at(r, plan.duration_days * k / plan.looks, plan)

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

from collections.abc import Callable, Iterator
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


Cats = dict[str, np.ndarray]
Pred = Callable[[Cats], np.ndarray]


def _tally(key: np.ndarray, size: int, bits: dict[str, np.ndarray],
           cols: dict[str, Pred]) -> dict[str, np.ndarray]:
    """Per key, the rows each predicate over the row flags selects:
    cols={"declined": lambda c: c["d"] & ~c["x"]} counts rows with d and not x."""
    return {name: np.bincount(key[pred(bits)], minlength=size).astype(np.float64)
            for name, pred in cols.items()}


def _label_users(r: dict[str, np.ndarray], upto: int, t: float, plan: Plan
                 ) -> dict[str, LabelUsers | None]:
    """Per deciding arm, the LabelUsers of the first `upto` rows (those mature by age at t)."""
    users, eps = plan.world.users, plan.exploration
    inv = 1.0 / eps if eps > 0 else 0.0
    key = r["in_b"][:upto].astype(np.int64) * users + r["user"][:upto]
    cols = _tally(key, 2 * users, {
        "d": r["d"][:upto], "x": r["explored"][:upto], "o": r["o"][:upto] & plan.shadow,
        "lab": r["label_time"][:upto] <= t, "f": r["fraud"][:upto]}, {
        "n": lambda c: c["d"] | ~c["d"], "flagged": lambda c: c["d"],
        "explored": lambda c: c["x"],
        "labelled_declined": lambda c: c["d"] & ~c["x"] & c["lab"],
        "labelled_approved": lambda c: ~(c["d"] & ~c["x"]) & c["lab"],
        "fraud_approved": lambda c: ~c["d"] & c["lab"] & c["f"],
        "fraud_explored_w": lambda c: c["x"] & c["lab"] & c["f"],
        "explored_w": lambda c: c["x"],
        "fraud_declined_labelled": lambda c: c["d"] & ~c["x"] & c["lab"] & c["f"],
        "other_flagged": lambda c: c["o"],
        "other_fraud_approved": lambda c: ~c["d"] & c["lab"] & c["f"] & c["o"],
        "other_fraud_explored_w": lambda c: c["x"] & c["lab"] & c["f"] & c["o"],
        "other_flagged_explored_w": lambda c: c["x"] & c["o"]})
    for name in ("fraud_explored_w", "explored_w", "other_fraud_explored_w",
                 "other_flagged_explored_w"):
        cols[name] = cols[name] * inv  # explored rows weigh 1 / p
    out: dict[str, LabelUsers | None] = {}
    for i, arm in enumerate(("model_a", "model_b")):
        part = slice(i * users, (i + 1) * users)
        keep = np.flatnonzero(cols["n"][part] > 0)
        out[arm] = LabelUsers(**{k: cols[k][part][keep] for k in LABEL_FIELDS},
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
    key = (v["period"] * 2 + v["in_b"]) * users + v["user"]
    sums = _tally(key, 2 * n_periods * users, {"d": v["d"], "lab": labelled, "m": mature,
                                                "y": yl}, {
        "decisions": lambda c: c["d"] | ~c["d"], "flagged": lambda c: c["d"],
        "labelled": lambda c: c["lab"], "tp": lambda c: c["m"] & c["y"] & c["d"],
        "fp": lambda c: c["m"] & ~c["y"] & c["d"], "fn": lambda c: c["m"] & c["y"] & ~c["d"],
        "tn": lambda c: c["m"] & ~c["y"] & ~c["d"]})
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
        p = _tally(v["user"], users, {"a": v["fa"], "b": v["fb"], "m": mature, "y": yl}, {
            "n": lambda c: c["a"] | ~c["a"], "disagree": lambda c: c["a"] != c["b"],
            "flag_a": lambda c: c["a"], "flag_b": lambda c: c["b"],
            "mature": lambda c: c["m"], "fraud": lambda c: c["y"],
            "tp_a": lambda c: c["y"] & c["a"], "tp_b": lambda c: c["y"] & c["b"],
            "tp_both": lambda c: c["y"] & c["a"] & c["b"],
            "fp_a": lambda c: c["m"] & ~c["y"] & c["a"],
            "fp_b": lambda c: c["m"] & ~c["y"] & c["b"]})
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

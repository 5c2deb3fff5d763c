"""Selective labels in the ledger, on both backends: exploration and its propensity on each
decision, where a label came from, bulk rows left undecided, the day's exploration budget
leased atomically by several processes, and the LabelUsers rows against hand-computed sums."""

from __future__ import annotations

import pytest
from lease_support import _leaser
from ledger_support import EXP, dec, err, raw, run_workers

from fraud.stats.cluster import user_codes
from fraud.stats.labels import LABEL_FIELDS
from fraud.store.exploration import grant
from fraud.store.records import Decision, ScoringError
from fraud.store.writer import Ledger

NOW = 1_000_000.0
OLD, YOUNG = NOW - 100.0, NOW - 1.0  # mature before NOW - 50


def d(rid: str, arm: str, user: str, *, flagged: bool, explored: bool = False, p: float = 0.0,
      ts: float = OLD, shadow: bool | None = None, amount: float = 10.0,
      experiment: int = EXP) -> Decision:
    return Decision(rid, ts, user, arm, f"fraud_{arm}:v1",  # type: ignore[arg-type]
                    0.9 if flagged else 0.1, flagged, 5.0, "predict", experiment, 0, amount,
                    None if shadow is None else 0.5, shadow, explored, p)


def test_a_decision_keeps_the_models_flag_the_explored_mark_and_the_propensity(ledger) -> None:
    ledger.record([d("x1", "model_a", "u1", flagged=True, explored=True, p=0.05, amount=42.0),
                   d("x2", "model_a", "u1", flagged=True, p=0.05),
                   dec("x3")]).result()
    got = ledger.lookup("x1")
    assert (got.is_fraud, got.explored, got.propensity, got.amount) == (True, True, 0.05, 42.0)
    assert (ledger.lookup("x2").explored, ledger.lookup("x2").propensity) == (False, 0.05)
    assert (ledger.lookup("x3").explored, ledger.lookup("x3").propensity) == (False, None)
    # The model's decision is what the aggregates count: flag rates stay the model's.
    assert ledger.aggregates(EXP)[0]["model_a"].flagged == 2
    listed = ledger.explored(EXP, 10)
    assert [(e["request_id"], e["propensity"], e["amount"]) for e in listed] == [
        ("x1", 0.05, 42.0)]


def test_a_label_keeps_its_source(ledger, db) -> None:
    ledger.record([dec("s1"), dec("s2"), dec("s3")]).result()
    assert ledger.label("s1", True, source="chargeback") == "created"
    assert ledger.label("s2", False, source="review") == "created"
    assert ledger.label("s3", False) == "created"
    assert ledger.label("s1", True, source="customer") == "duplicate"  # the first one stays
    rows = dict(raw(db, "SELECT request_id, source FROM labels"))
    assert rows == {"s1": "chargeback", "s2": "review", "s3": None}
    with pytest.raises(ValueError, match="source"):
        ledger.label("s3", False, source="rumour")
    assert ledger.label_sources(EXP) == {"model_a": {"chargeback": 1, "review": 1,
                                                     "unspecified": 1}}


def test_rows_left_undecided_count_as_attempted_not_as_errors(ledger) -> None:
    ledger.record([dec(f"ok{i}", "model_b", user="ann") for i in range(8)]).result()
    ledger.record_errors([err("ann", "model_b")])
    ledger.record_errors([ScoringError(EXP, 0, "model_b", "ann", True) for _ in range(9)])
    b = ledger.aggregates(EXP)[0]["model_b"]
    assert (b.decisions, b.errors) == (8, 1)
    assert (b.error.sx, b.error.sy) == (18, 1)  # attempted 8 + 1 + 9; errors 1
    assert (b.error.sxx, b.error.sxy) == (18 * 18, 18)
    scan = ledger.aggregates(EXP, scan=True)[0]["model_b"]
    assert scan.error == b.error


def test_the_days_budget_is_leased_in_chunks_never_beyond_it(ledger) -> None:
    assert [ledger.lease_exploration("2026-03-01", 40.0, 100.0) for _ in range(4)] == [
        40.0, 40.0, 20.0, 0.0]
    assert ledger.lease_exploration("2026-03-02", 40.0, 100.0) == 40.0  # a new day
    today = ledger.exploration_today("2026-03-01", 0.0)
    assert (today["leased"], today["leases"]) == (100.0, 3)
    assert ledger.exploration_today("2026-02-28", 0.0)["leased"] is None
    assert grant(0.1, 0.3, 0.2) <= 0.1 and 0.2 + grant(0.1, 0.3, 0.2) <= 0.3  # floating point
    total = sum(ledger.lease_exploration("2026-03-03", 0.1, 0.3) for _ in range(5))
    assert 0.29 < total <= 0.3


def test_processes_leasing_together_never_exceed_the_budget(db: str) -> None:
    Ledger(db).close()  # the schema first (SQLite)
    out = run_workers(3, lambda w, start, results: (_leaser, (db, w, 7.0, 100.0, start,
                                                              results)))
    granted = [g for part in out.values() for g in part]
    assert sum(granted) == pytest.approx(100.0) and sum(granted) <= 100.0
    assert all(0 < g <= 7.0 for g in granted) and len(granted) == 15
    assert sum(1 for part in out.values() if part) >= 2  # they really interleaved


def test_exploration_today_and_the_experiments_explored_totals(ledger) -> None:
    ledger.record([d("e1", "model_a", "u1", flagged=True, explored=True, p=0.1, amount=30.0,
                     ts=NOW), d("e2", "model_b", "u2", flagged=True, explored=True, p=0.1,
                                amount=20.0, ts=NOW - 90_000),
                   d("e3", "model_b", "u2", flagged=True, p=0.1, amount=99.0, ts=NOW)]).result()
    ledger.label("e2", True, source="chargeback")
    today = ledger.exploration_today("whatever", NOW - 10.0)
    assert (today["explored"], today["explored_amount"]) == (1, 30.0)
    assert ledger.explored_totals(EXP) == {
        "model_a": {"explored": 1, "explored_amount": 30.0, "labelled": 0, "frauds": 0,
                    "fraud_amount": 0.0},
        "model_b": {"explored": 1, "explored_amount": 20.0, "labelled": 1, "frauds": 1,
                    "fraud_amount": 20.0}}


def _sums(u, users: list[str]) -> dict[str, list[float]]:
    """Each field's per-user sums, in the order of `users`."""
    at = {code: i for i, code in enumerate(u.ids)}
    order = [at[code] for code in user_codes(users)]
    return {f: getattr(u, f)[order].tolist() for f in LABEL_FIELDS}


def test_label_rows_against_hand_computed_sums(ledger) -> None:
    ledger.record([
        # model_a decides for ann: explored fraud (p 0.25), two labelled declines (one fraud),
        # an approved fraud, an unlabelled approval, and one decision too young to count.
        d("a1", "model_a", "ann", flagged=True, explored=True, p=0.25),
        d("a2", "model_a", "ann", flagged=True), d("a3", "model_a", "ann", flagged=True),
        d("a4", "model_a", "ann", flagged=False), d("a5", "model_a", "ann", flagged=False),
        d("a6", "model_a", "ann", flagged=True, explored=True, p=0.25, ts=YOUNG),
        # ... and for bob: an unlabelled explored decision (p 0.5), a legit approval.
        d("b1", "model_a", "bob", flagged=True, explored=True, p=0.5),
        d("b2", "model_a", "bob", flagged=False),
        # model_b decides for ann too (a share change moved her), shadow-scored by model_a.
        d("c1", "model_b", "ann", flagged=False, shadow=True),
        d("c2", "model_b", "ann", flagged=True, explored=True, p=0.2, shadow=True),
        d("c3", "model_b", "ann", flagged=True, shadow=False),
        # another experiment's decision never counts
        d("z1", "model_a", "ann", flagged=True, explored=True, p=0.1, experiment=EXP + 1),
    ]).result()
    for rid, fraud in (("a1", True), ("a2", False), ("a3", True), ("a4", True), ("a6", True),
                       ("b2", False), ("c1", True), ("c2", True), ("z1", True)):
        assert ledger.label(rid, fraud) == "created"
    rows = ledger.label_users(EXP, NOW - 50.0)
    assert set(rows) == {"model_a", "model_b"}
    a, b = rows["model_a"], rows["model_b"]
    ann, bob = user_codes(["ann", "bob"])  # the rows carry the users' 64-bit codes
    assert sorted(a.ids) == sorted([ann, bob]) and list(b.ids) == [ann]
    #            n  flag expl lab_d lab_a fr_app fr_exw exp_w fr_dl o_fl o_fra o_frw o_flw
    ann_a = [5.0, 3.0, 1.0, 2.0, 2.0, 1.0, 4.0, 4.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    bob_a = [2.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    ann_b = [3.0, 2.0, 1.0, 0.0, 2.0, 1.0, 5.0, 5.0, 0.0, 2.0, 1.0, 5.0, 5.0]
    assert _sums(a, ["ann", "bob"]) == {f: [ann_a[i], bob_a[i]] for i, f in
                                        enumerate(LABEL_FIELDS)}
    assert _sums(b, ["ann"]) == {f: [ann_b[i]] for i, f in enumerate(LABEL_FIELDS)}
    assert ledger.label_users(EXP, OLD - 1.0) == {}  # nothing mature yet


def test_user_periods_are_the_per_user_rows(ledger) -> None:
    ledger.record([dec("p1", user="ann", flagged=True), dec("p2", user="ann"),
                   dec("p3", "model_b", user="bob", period=1)]).result()
    ledger.record_errors([err("bob", "model_b", period=1)])
    up = ledger.user_periods(EXP)
    got = sorted(zip(up.period.tolist(), up.arm.tolist(), up.user.tolist(),
                     up.decisions.tolist(), up.flagged.tolist(), up.errors.tolist(),
                     strict=True))
    ann, bob = (int(c) for c in user_codes(["ann", "bob"]))
    assert got == [(0, "model_a", ann, 2.0, 1.0, 0.0), (1, "model_b", bob, 1.0, 0.0, 1.0)]

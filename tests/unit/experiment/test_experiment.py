"""The experiment without a server: identity, periods, decisions, guardrails, shared state."""

import threading

import pytest

from fraud.assignment import assign
from fraud.config import ABConfig, GuardrailConfig, LabelPolicy, RetentionPolicy
from fraud.experiment.decisions import ArmModel, decide
from fraud.experiment.live import Experiment
from fraud.experiment.look import list_experiments
from fraud.store.writer import Ledger

ARMS = {"model_a": ArmModel("model_a", "fraud_rf:aaa", 0.7, {}),
        "model_b": ArmModel("model_b", "fraud_hgb:bbb", 0.4, {})}
SWAPPED = {"model_a": ArmModel("model_a", "fraud_hgb:bbb", 0.4, {}),
           "model_b": ArmModel("model_b", "fraud_rf:aaa", 0.7, {})}


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as led:
        yield led


def make(ledger, arms=ARMS, **cfg):
    return Experiment(ABConfig(**cfg), arms, ledger)


def serve(exp, users, proba=0.1, latency=5.0, source="predict"):
    """What a /predict does (fraud/serving/path.py): one state snapshot, route, record."""
    state = exp.state
    arms = [exp.route(u, state) for u in users]
    return exp.record(users, arms, [proba] * len(users), latency, source, state)


def test_decision_uses_the_models_own_threshold():
    assert decide(0.7, 0.7) is True
    assert decide(0.69, 0.7) is False


def test_record_returns_responses_and_ledgers_them(ledger):
    exp = make(ledger)
    out = exp.record(["u1", "u2"], ["model_a", "model_b"], [0.65, 0.65], 12.5, "batch")
    assert [p.is_fraud for p in out] == [False, True]  # 0.65 < 0.7 for A, >= 0.4 for B
    assert [p.model_tag for p in out] == ["fraud_rf:aaa", "fraud_hgb:bbb"]
    assert out[0].request_id != out[1].request_id and len(out[0].request_id) == 32
    stored = ledger.lookup(out[1].request_id)
    assert stored.user_id == "u2" and stored.is_fraud and stored.source == "batch"
    assert (stored.experiment_id, stored.period) == (exp.id, exp.state.period)


def test_route_is_sticky_and_follows_the_share(ledger):
    exp = make(ledger, challenger_share=0.3, salt="s1")
    assert all(exp.route(f"u{i}") == assign(f"u{i}", "s1", 0.3) for i in range(300))


def test_rollback_persists_and_routes_everyone_to_the_champion(ledger, tmp_path):
    exp = make(ledger, challenger_share=0.5)
    assert exp.rollback("manual test") is True
    assert exp.rollback("again") is False  # first reason is kept
    assert {exp.route(f"u{i}") for i in range(200)} == {"model_a"}
    ledger.close()
    with Ledger(tmp_path / "ledger.sqlite") as reopened:  # a restart
        again = make(reopened, challenger_share=0.5)
        assert again.id == exp.id
        assert again.state.rolled_back and again.state.rollback_reason == "manual test"
        assert again.effective_share() == 0.0
        again.resume()
        assert again.effective_share() == 0.5


def test_share_change_is_shared_between_instances(ledger):
    one, two = make(ledger), make(ledger)
    assert one.id == two.id
    one.set_share(0.1)
    assert two.refresh().share_override == 0.1 and two.configured_share() == 0.1


def test_a_rollback_saved_by_another_worker_is_never_overwritten(ledger):
    x, y = make(ledger), make(ledger)
    x.rollback("worker x saw a breach")
    # y has not refreshed: its stale state says "not rolled back"; a share change from it
    # must not undo x's rollback (compare-and-set re-reads and re-applies the change).
    y.set_share(0.3)
    assert y.state.rolled_back and y.state.share_override == 0.3
    assert x.refresh().rolled_back and x.state.rollback_reason == "worker x saw a breach"


def test_concurrent_state_changes_all_land(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as la, Ledger(path) as lb:
        x, y = make(la), make(lb)
        start = x.state.period

        def bump(exp, n):
            for i in range(n):
                exp.set_share(0.1 + 0.01 * (i % 5))

        threads = [threading.Thread(target=bump, args=(e, 20)) for e in (x, y)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert x.refresh().period == start + 40  # no lost update


def test_report_never_writes(ledger):
    exp = make(ledger)
    serve(exp, [f"u{i}" for i in range(50)])
    version = ledger.experiment(exp.id).version
    for _ in range(3):
        exp.report()
    assert ledger.experiment(exp.id).version == version


def test_decisions_routed_under_a_stale_period_count_in_that_period(tmp_path):
    """A worker that has not seen a share change records under the old period, so the
    users test of the new period sees only users routed with the new share."""
    path = tmp_path / "ledger.sqlite"
    cfg = {"guardrails": GuardrailConfig(min_decisions=10, min_users=10)}
    with Ledger(path) as lx, Ledger(path) as ly:
        x, y = make(lx, **cfg), make(ly, **cfg)
        x.set_share(0.0)
        y.refresh()
        x.set_share(0.5)  # y is stale for up to a second
        serve(y, [f"stale-{i}" for i in range(300)])  # all to A, under the old period
        serve(x, [f"fresh-{i}" for i in range(400)])
        ly.flush()
        body, rolled = x.enforce_guardrails()
        srm = body["sample_ratio"]
        assert srm["users_a"] + srm["users_b"] == 400 and not srm["mismatch"]
        assert not rolled and body["experiment"]["guardrail_breaches"] == []


def test_enforce_rolls_back_a_slow_challenger_and_reports_it(ledger):
    exp = make(ledger, guardrails=GuardrailConfig(min_decisions=50, min_users=10,
                                                  max_p95_latency_ms=20))
    for i in range(400):  # the challenger is 10x slower on every call
        u = f"u{i}"
        arm = exp.route(u)
        exp.record([u], [arm], [0.1], 50.0 if arm == "model_b" else 5.0, "predict")
    body, rolled = exp.enforce_guardrails()
    assert rolled and body["experiment"]["rolled_back"]
    assert "latency" in body["experiment"]["rollback_reason"]
    assert exp.refresh().rolled_back and exp.effective_share() == 0.0


def test_errors_count_per_row_against_their_arm(ledger):
    exp = make(ledger)
    state = exp.state
    exp.record_errors(["u1", "u1", "u2"], ["model_b", "model_b", "model_a"], state)
    body, _, _ = exp.report()
    assert body["model_b"]["errors"] == 2 and body["model_a"]["errors"] == 1


def test_a_failing_challenger_is_rolled_back_on_its_error_rate(ledger):
    exp = make(ledger)
    users = [f"u{i}" for i in range(3000)]
    state = exp.state
    arms = [exp.route(u, state) for u in users]
    ok = [(u, a) for i, (u, a) in enumerate(zip(users, arms, strict=True))
          if not (a == "model_b" and i % 5 == 0)]  # the challenger fails 20% of its rows
    failed = [(u, a) for u, a in zip(users, arms, strict=True) if (u, a) not in ok]
    exp.record([u for u, _ in ok], [a for _, a in ok], [0.1] * len(ok), 5.0, "predict", state)
    exp.record_errors([u for u, _ in failed], [a for _, a in failed], state)
    _, rolled = exp.enforce_guardrails()
    assert rolled and "error rate" in exp.state.rollback_reason


def test_a_healthy_challenger_is_not_rolled_back_on_noise(ledger):
    exp = make(ledger)
    import random
    rng = random.Random(3)
    for _i in range(4000):
        u = f"u{rng.randrange(60)}"  # few users, many decisions each
        out = serve(exp, [u], proba=rng.random())
        ledger.label(out[0].request_id, rng.random() < 0.3, wait=0)
    body, rolled = exp.enforce_guardrails()
    assert not rolled and body["experiment"]["guardrail_breaches"] == []


def test_a_config_share_edit_starts_a_new_period(ledger):
    first = make(ledger, challenger_share=0.5)
    edited = make(ledger, challenger_share=0.2)
    assert edited.id == first.id
    assert edited.state.period == first.state.period + 1 and edited.state.period_share == 0.2


def test_report_counts_and_labels(ledger):
    exp = make(ledger, challenger_share=0.5)
    out = exp.record(["u1", "u2", "u3"], ["model_a", "model_a", "model_b"], [0.9, 0.1, 0.9],
                     5.0, "predict")
    ledger.label(out[0].request_id, True)   # tp for A
    ledger.label(out[1].request_id, True)   # fn for A
    body, _, _ = exp.report()
    a = body["model_a"]
    assert (a["total_predictions"], a["fraud_count"], a["legit_count"]) == (2, 1, 1)
    assert a["fraud_rate"] == 0.5 and a["tp"] == 1 and a["fn"] == 1
    assert a["recall"]["value"] == 0.5 and a["users"] == 2
    assert body["model_b"]["total_predictions"] == 1


def test_new_identity_ends_the_experiment_and_keeps_its_history(ledger):
    old = make(ledger)
    serve(old, [f"u{i}" for i in range(20)])
    promoted = make(ledger, arms=SWAPPED)  # a promotion swaps the tags: a new experiment
    assert promoted.id != old.id
    body, _, _ = promoted.report()
    assert body["model_a"]["total_predictions"] == 0  # fresh counts
    history = list_experiments(ABConfig(), ledger)
    assert [h["id"] for h in history] == [promoted.id, old.id]
    ended = history[1]
    assert ended["ended_at"] and "model_a" in ended["end_reason"]
    assert (ended["per_arm"]["model_a"]["users"] + ended["per_arm"]["model_b"]["users"]) == 20
    assert make(ledger, salt="another").id not in (old.id, promoted.id)


def test_end_stores_final_statistics(ledger):
    exp = make(ledger)
    serve(exp, [f"u{i}" for i in range(10)])
    exp.end("promotion: test")
    listed = list_experiments(ABConfig(), ledger)[0]
    assert listed["id"] == exp.id and listed["end_reason"] == "promotion: test"
    assert listed["ended_at"]
    stored = ledger.experiment(exp.id)
    assert stored.ended_at and stored.end_reason == "promotion: test"
    assert stored.final["per_arm"]["model_a"]["users"] + \
        stored.final["per_arm"]["model_b"]["users"] == 10


def test_resume_refusal_and_force_holds(ledger):
    exp = make(ledger)
    exp._update(lambda st: st.__class__(**{**st.to_json(), "primary": {
        "p_min": 1e-4, "ci_low": -0.3, "ci_high": -0.1, "verdict": "challenger_worse",
        "verdict_look": 3, "looks": 3}}))
    exp.rollback("sequential test: worse")
    assert "force" in exp.resume_refusal(force=False)
    assert exp.resume_refusal(force=True) is None
    exp.resume(force=True)
    assert exp.state.worse_overridden and not exp.state.rolled_back


def test_maturity_counts_old_unlabelled_decisions_as_legit(ledger):
    clock = [1_000_000.0]
    exp = Experiment(ABConfig(labels=LabelPolicy(maturity_days=30)), ARMS, ledger,
                     clock=lambda: clock[0])
    out = exp.record(["u1", "u2", "u3"], ["model_a"] * 3, [0.9, 0.1, 0.9], 5.0, "predict")
    ledger.label(out[2].request_id, True)
    body, _ = exp.enforce_guardrails()
    assert body["model_a"]["mature"] == 1  # only the labelled one so far
    clock[0] += 31 * 86_400
    body, _ = exp.enforce_guardrails()
    a = body["model_a"]
    assert (a["mature"], a["tp"], a["fp"], a["tn"]) == (3, 1, 1, 1)
    ledger.label(out[0].request_id, True)  # a late chargeback turns the fp into a tp
    body, _, _ = exp.report()
    assert (body["model_a"]["tp"], body["model_a"]["fp"]) == (2, 0)


def test_retention_must_outlive_maturity() -> None:
    with pytest.raises(ValueError, match=r"must exceed labels\.maturity_days"):
        ABConfig(labels=LabelPolicy(maturity_days=60),
                 retention=RetentionPolicy(decisions_days=30))
    assert ABConfig(labels=LabelPolicy(maturity_days=60)).retention.decisions_days == 90
    assert ABConfig(retention=RetentionPolicy(decisions_days=None)).retention.decisions_days is None


def test_an_explored_decision_is_answered_approved_and_stored_as_the_models(ledger):
    """Exploration: the client gets the decision taken; the ledger keeps the model's flag
    (so flag rates stay the model's), the explored mark and the propensity; the metric counts
    each explored decision once it is stored. With maturity set, /ab-stats carries the label
    rows' blocks."""
    counted = []
    exp = Experiment(ABConfig.model_validate({
        "exploration": {"enabled": True, "rate": 0.2, "max_amount": 50, "daily_budget": 500,
                        "lease": 500},
        "labels": {"maturity_days": 1}}), ARMS, ledger, on_explored=counted.append)
    exp.explorer.budget.refill()
    users = [f"u{i}" for i in range(80)]
    out = exp.record(users, ["model_a"] * 80, [0.9] * 40 + [0.1] * 40, 5.0, "batch")
    assert not counted  # record() has no amounts: nothing is a candidate
    answers, committed = exp.decide(users, ["model_a"] * 80, [0.9] * 80, 5.0, "batch",
                                    amounts=[20.0] * 40 + [80.0] * 40)
    committed.result()
    explored = [p for p in answers if not p.is_fraud]
    assert explored and all(answers.index(p) < 40 for p in explored)  # never above 50
    for p in answers:
        d = ledger.lookup(p.request_id)
        assert d.is_fraud is True and d.explored == (not p.is_fraud)
        assert d.propensity == (0.2 if d.amount <= 50 else 0.0)
    assert counted == ["model_a"] * len(explored)
    periods = ledger.aggregates(exp.id).values()
    assert sum(p["model_a"].flagged for p in periods) == 40 + 80  # the model's flags
    body, _, _ = exp.report()
    assert body["exploration"]["today"]["explored"] == len(explored)
    assert body["exploration"]["per_arm"]["model_a"]["explored"] == len(explored)
    assert body["labels"]["maturity_days"] == 1 and body["labels"]["per_arm"] == {}
    # nothing is a day old: the label check has not run, and the block says so (not "no bias")
    assert body["labels"]["label_bias"] is None
    assert "no decision is older than labels.maturity_days (1) yet" in body["labels"]["reason"]
    assert len(out) == 80

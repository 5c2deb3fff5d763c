"""The experiment without a server: routing, decisions, guardrails, rollback persistence."""

import pytest

from fraud.assignment import assign
from fraud.config import ABConfig, GuardrailConfig
from fraud.experiment import Experiment, decide, guardrail_breaches, period_counts
from fraud.ledger import ArmAggregate, SQLiteLedger
from fraud.models import ArmModel

ARMS = {"model_a": ArmModel("model_a", "fraud_rf:aaa", 0.7, {}),
        "model_b": ArmModel("model_b", "fraud_hgb:bbb", 0.4, {})}


@pytest.fixture
def ledger(tmp_path):
    with SQLiteLedger(tmp_path / "ledger.sqlite") as led:
        yield led


def make(ledger, **cfg):
    return Experiment(ABConfig(**cfg), ARMS, ledger)


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


def test_route_is_sticky_and_follows_the_share(ledger):
    exp = make(ledger, challenger_share=0.3, salt="s1")
    assert all(exp.route(f"u{i}") == assign(f"u{i}", "s1", 0.3) for i in range(300))


def test_rollback_persists_and_routes_everyone_to_the_champion(ledger, tmp_path):
    exp = make(ledger, challenger_share=0.5)
    assert exp.rollback("manual test") is True
    assert exp.rollback("again") is False  # first reason is kept
    assert {exp.route(f"u{i}") for i in range(200)} == {"model_a"}
    ledger.close()
    with SQLiteLedger(tmp_path / "ledger.sqlite") as reopened:  # a restart
        again = make(reopened, challenger_share=0.5)
        assert again.state.rolled_back and again.state.rollback_reason == "manual test"
        assert again.effective_share() == 0.0
        again.resume()
        assert again.effective_share() == 0.5


def test_share_change_is_shared_between_instances(ledger):
    one, two = make(ledger), make(ledger)
    one.set_share(0.1)
    assert two.refresh().share_override == 0.1 and two.configured_share() == 0.1


def _counts(a_total, a_flag, b_total, b_flag, b_errors=0, b_p95=10.0):
    return {"model_a": ArmAggregate(total=a_total, flagged=a_flag, latency_p95_ms=10.0),
            "model_b": ArmAggregate(total=b_total, flagged=b_flag, errors=b_errors,
                                    latency_p95_ms=b_p95)}


def test_guardrails_quiet_on_a_healthy_challenger():
    c = _counts(1000, 20, 1000, 25)
    assert guardrail_breaches(c, period_counts(c, None), None, "collecting",
                              GuardrailConfig()) == []


@pytest.mark.parametrize(("counts", "srm", "verdict", "expected"), [
    (_counts(1000, 20, 1000, 20, b_errors=50), None, "collecting", "error rate"),
    (_counts(1000, 20, 1000, 20, b_p95=900.0), None, "collecting", "p95 latency"),
    (_counts(1000, 20, 1000, 300), None, "collecting", "flag rate"),
    (_counts(1000, 20, 1000, 0), None, "collecting", None),  # 0 is inside [A/3 - slack, ...]
    (_counts(1000, 20, 1000, 20), {"mismatch": True, "p_value": 1e-9, "observed_share_b": 0.4,
                                   "expected_share_b": 0.5}, "collecting", "sample-ratio"),
    (_counts(1000, 20, 1000, 20), None, "challenger_worse", "challenger_worse"),
])
def test_each_guardrail_trips(counts, srm, verdict, expected):
    breaches = guardrail_breaches(counts, period_counts(counts, None), srm, verdict,
                                  GuardrailConfig())
    if expected is None:
        assert breaches == []
    else:
        assert len(breaches) == 1 and expected in breaches[0]


def test_guardrails_wait_for_enough_decisions():
    c = _counts(100, 2, 100, 90, b_errors=50)
    assert guardrail_breaches(c, period_counts(c, None), None, "collecting",
                              GuardrailConfig(min_decisions=200)) == []


def test_period_counts_subtract_the_baseline():
    c = _counts(1000, 20, 500, 10, b_errors=4)
    assert period_counts(c, {"model_a": [900, 18, 0], "model_b": [500, 10, 1]}) == {
        "model_a": (100, 2, 0), "model_b": (0, 0, 3)}


def test_enforce_rolls_back_on_a_breach_and_reports_it(ledger):
    exp = make(ledger, guardrails=GuardrailConfig(min_decisions=10, max_p95_latency_ms=20))
    users = [f"u{i}" for i in range(200)]
    arms = [exp.route(u) for u in users]
    for user, arm in zip(users, arms, strict=True):  # the challenger is 10x slower
        exp.record([user], [arm], [0.1], 50.0 if arm == "model_b" else 5.0, "predict")
    ledger.flush()
    body, rolled = exp.enforce_guardrails()
    assert rolled and body["experiment"]["rolled_back"]
    assert "p95 latency 50.0 ms > 20.0 ms" in body["experiment"]["rollback_reason"]
    assert body["model_a"]["total_predictions"] + body["model_b"]["total_predictions"] == 200
    assert exp.refresh().rolled_back


def test_latency_guardrail_spares_an_overloaded_host():
    c = _counts(1000, 20, 1000, 20, b_p95=900.0)
    c["model_a"] = ArmAggregate(total=1000, flagged=20, latency_p95_ms=600.0)
    assert guardrail_breaches(c, period_counts(c, None), None, "collecting",
                              GuardrailConfig()) == []


def test_share_change_settles_before_the_sample_ratio_is_judged(ledger):
    clock = [1000.0]
    exp = Experiment(ABConfig(guardrails=GuardrailConfig(min_decisions=10)), ARMS, ledger,
                     clock=lambda: clock[0])
    exp.set_share(0.5)
    # A stale worker still routes everyone to model_a right after the change.
    exp.record([f"s{i}" for i in range(100)], ["model_a"] * 100, [0.1] * 100, 5.0, "predict")
    body, _, breaches = exp.report()
    assert body["experiment"]["period_settling"] and body["sample_ratio"] is None
    assert breaches == []
    clock[0] += 5  # every worker has the new share now
    exp.report()  # settles: the baseline excludes the stale decisions
    users = [f"n{i}" for i in range(400)]
    exp.record(users, [exp.route(u) for u in users], [0.1] * 400, 5.0, "predict")
    body, _, breaches = exp.report()
    assert not body["experiment"]["period_settling"]
    assert body["sample_ratio"]["n_a"] + body["sample_ratio"]["n_b"] == 400
    assert not body["sample_ratio"]["mismatch"] and breaches == []


def test_a_config_share_edit_starts_a_new_period(ledger, tmp_path):
    make(ledger, challenger_share=0.5).report()
    edited = make(ledger, challenger_share=0.2)
    body, _, _ = edited.report()
    assert body["experiment"]["period_settling"] and edited.state.period_share == 0.2


def test_report_counts_and_labels(ledger):
    exp = make(ledger, challenger_share=0.5, guardrails=GuardrailConfig(min_decisions=1))
    out = exp.record(["u1", "u2", "u3"], ["model_a", "model_a", "model_b"], [0.9, 0.1, 0.9],
                     5.0, "predict")
    ledger.label(out[0].request_id, True)   # tp for A
    ledger.label(out[1].request_id, True)   # fn for A
    body, _, _ = exp.report()
    a = body["model_a"]
    assert (a["total_predictions"], a["fraud_count"], a["legit_count"]) == (2, 1, 1)
    assert a["fraud_rate"] == 0.5 and a["tp"] == 1 and a["fn"] == 1
    assert a["recall"]["value"] == 0.5
    assert body["model_b"]["total_predictions"] == 1
    assert body["sample_ratio"]["n_a"] == 2 and body["sample_ratio"]["n_b"] == 1

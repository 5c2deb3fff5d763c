"""The operations, admin and feedback routes' answers on a real SQLite ledger, with the router's
calls as plain coroutines: what each answers, and 503 saying where and why when the ledger
cannot answer."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from fraud.api import auth, operations
from fraud.api.operations import Operations
from fraud.config import ABConfig
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.serving.card import ServedCard
from fraud.store.records import LedgerUnavailable
from fraud.store.writer import Ledger

ARMS = {"model_a": ArmModel("model_a", "fraud_rf:aaa", 0.7, {}),
        "model_b": ArmModel("model_b", "fraud_hgb:bbb", 0.4, {})}
TAGS = {arm: m.tag for arm, m in ARMS.items()}
CARD = ServedCard({"card_version": 1}, "startup", markdown="# card\n")


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as led:
        yield led


@pytest.fixture
def ops(ledger: Ledger) -> Operations:
    return Operations(ABConfig(), Experiment(ABConfig(), ARMS, ledger), TAGS,
                      gate_problem=None, card=CARD, clock=Clock())


def body(answer: Any) -> Any:
    return json.loads(answer.body)


def down(*args: Any, **kw: Any) -> None:
    raise LedgerUnavailable("cannot read: disk I/O error")


async def loaded() -> list[str]:
    return list(TAGS.values())


def test_health_reports_the_models_the_router_loaded_and_the_uptime(ops: Operations) -> None:
    ops.clock.now = 112.34
    answer = asyncio.run(ops.health(loaded))
    assert answer.status_code == 200
    assert body(answer) == {"status": "healthy", "models_loaded": True, "models": TAGS,
                            "uptime_seconds": 12.3}


def test_health_without_an_answer_from_the_router_says_so(
        ops: Operations, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(operations, "HEALTH_TIMEOUT_S", 0.01)

    async def hangs() -> list[str]:
        await asyncio.sleep(5)
        return []

    answer = asyncio.run(ops.health(hangs))
    assert answer.status_code == 200 and body(answer)["models_loaded"] is False
    assert "health: the router did not say which models it loaded" in caplog.text


def test_health_is_503_until_the_models_passed_the_gate(ledger: Ledger) -> None:
    ops = Operations(ABConfig(), Experiment(ABConfig(), ARMS, ledger), TAGS,
                     gate_problem="no gate report", card=CARD)
    answer = asyncio.run(ops.health(loaded))
    assert answer.status_code == 503 and body(answer)["reason"] == "no gate report"


def test_ab_stats_hides_the_internals_from_all_but_admin(ops: Operations) -> None:
    public, full = ops.ab_stats(admin=False), ops.ab_stats(admin=True)
    assert "salt" in full["experiment"] and "salt" not in public["experiment"]
    assert full["experiment"]["id"] == public["experiment"]["id"] == ops.experiment.id


@pytest.mark.parametrize("route", ["ab_stats", "experiments", "disagreements", "report"])
def test_a_ledger_that_cannot_answer_is_503_with_a_stable_code_and_the_detail_in_the_log(
        ops: Operations, monkeypatch: pytest.MonkeyPatch, route: str,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(ops.experiment, "report", down)
    monkeypatch.setattr(ops.experiment, "disagreements", down)
    monkeypatch.setattr(operations, "list_experiments", down)
    answer = {"ab_stats": lambda: ops.ab_stats(admin=True),
              "experiments": ops.experiments,
              "disagreements": lambda: ops.disagreements(5),
              "report": lambda: asyncio.run(ops.report(loaded, admin=False))}[route]()
    assert answer.status_code == 503
    assert body(answer) == {"error": "ledger unavailable (LEDGER_UNAVAILABLE): nothing was "
                                     "read; retry later"}
    assert f"{ops.ledger.where}: cannot read: disk I/O error" in caplog.text


def test_experiments_and_disagreements_name_the_current_experiment(ops: Operations) -> None:
    listed = ops.experiments()
    assert listed["current"] == ops.experiment.id
    assert [e["id"] for e in listed["experiments"]] == [ops.experiment.id]
    assert ops.disagreements(10) == {"experiment": ops.experiment.id, "shadow": False,
                                     "disagreements": []}


def test_the_report_page_shows_the_experiment_even_when_the_router_fails(
        ops: Operations, caplog: pytest.LogCaptureFixture) -> None:
    async def no_router() -> dict[str, Any]:
        raise ConnectionError("router down")

    with caplog.at_level(logging.ERROR, logger="fraudserve"):
        page = asyncio.run(ops.report(no_router, admin=False))
    assert page.status_code == 200 and page.media_type == "text/html"
    assert f"Experiment {ops.experiment.id}" in page.body.decode()
    assert "report: the drift report failed" in caplog.text


def test_feedback_stores_a_label_once_and_refuses_a_conflict(ops: Operations) -> None:
    decided = ops.experiment.record(["u1"], ["model_a"], [0.9], 5.0, "predict")[0]
    rid = decided.request_id
    assert ops.feedback("nope", True) == (404, {"request_id": "nope", "is_fraud": True,
                                                "error": "request_id is unknown: no such "
                                                         "decision"})
    assert ops.feedback(rid, True) == (200, {"request_id": rid, "is_fraud": True,
                                             "status": "created"})
    assert ops.feedback(rid, True)[1]["status"] == "duplicate"
    assert ops.feedback(rid, False)[0] == 409


def test_feedback_keeps_where_the_label_came_from(ops: Operations) -> None:
    rid = ops.experiment.record(["u1"], ["model_a"], [0.9], 5.0, "predict")[0].request_id
    assert ops.feedback(rid, True, "chargeback") == (200, {
        "request_id": rid, "is_fraud": True, "source": "chargeback", "status": "created"})
    assert ops.ledger.label_sources(ops.experiment.id) == {"model_a": {"chargeback": 1}}


def test_explored_lists_the_approved_would_be_declines_for_admins_only(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ABConfig.model_validate({"exploration": {"enabled": True, "rate": 0.2,
                                                   "max_amount": 100, "daily_budget": 1000}})
    exp = Experiment(cfg, ARMS, ledger)
    assert exp.explorer is not None
    exp.explorer.budget.refill()  # the lease a first candidate would start in the background
    ops = Operations(cfg, exp, TAGS, gate_problem=None, card=CARD, clock=Clock())
    out, done = exp.decide([f"u{i}" for i in range(60)], ["model_a"] * 60, [0.9] * 60, 5.0,
                           "predict", amounts=[10.0] * 60)
    done.result()
    listed = ops.explored(100)
    taken = {p.request_id for p in out if not p.is_fraud}  # flagged by the model, approved
    assert taken and {e["request_id"] for e in listed["explored"]} == taken
    assert all(e["propensity"] == 0.2 and e["amount"] == 10.0 for e in listed["explored"])
    assert listed["exploration"] == {"enabled": True, "rate": 0.2, "max_amount": 100.0,
                                     "daily_budget": 1000.0}
    assert auth.rule_for("/experiments/current/explored").scope == "admin"
    monkeypatch.setattr(ops.ledger, "explored", down)
    assert ops.explored(5).status_code == 503


def test_feedback_on_a_ledger_that_cannot_answer_is_503_and_stores_nothing(
        ops: Operations, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops.ledger, "label", down)
    status, answer = ops.feedback("abc", True)
    assert status == 503 and answer == {
        "request_id": "abc", "error": "ledger unavailable (LEDGER_UNAVAILABLE): the label was "
        "not stored; retry later"}


def test_admin_changes_answer_the_shared_state_after_them(ops: Operations) -> None:
    rolled = ops.rollback()["experiment"]
    assert rolled["rolled_back"] and rolled["rollback_reason"] == "manual (admin)"
    assert ops.resume(force=False)["experiment"]["rolled_back"] is False
    assert ops.share(0.25)["experiment"]["share_override"] == 0.25


def test_a_refused_resume_is_409_saying_why(ops: Operations,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ops.rollback()
    monkeypatch.setattr(ops.experiment, "resume_refusal",
                        lambda force: None if force else "the verdict is challenger_worse")
    answer = ops.resume(force=False)
    assert answer.status_code == 409
    assert body(answer) == {"error": "the verdict is challenger_worse"}
    assert ops.experiment.state.rolled_back
    assert ops.resume(force=True)["experiment"]["rolled_back"] is False


def test_the_model_card_route_serves_the_card(ops: Operations) -> None:
    assert ops.model_card(None).body == b"# card\n"
    assert body(ops.model_card("application/json")) == {"card_version": 1, "source": "startup"}

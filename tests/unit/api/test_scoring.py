"""The scoring routes' work on a real SQLite ledger with the router as plain coroutines: answers
only once committed, refusals and failures as their API errors, decisions and errors counted,
and explanations that need only gated models."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from fraud.api.errors import LedgerDown, NotExplainable, NotReady, ScoringFailed
from fraud.api.scoring import Scoring
from fraud.config import ABConfig
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.schema import EXAMPLE_TRANSACTION, Transaction
from fraud.serving.router_calls import RouterCalls
from fraud.store.writer import Ledger

ARMS = {"model_a": ArmModel("model_a", "fraud_rf:aaa", 0.5, {}),
        "model_b": ArmModel("model_b", "fraud_hgb:bbb", 0.5, {})}


class Router:
    """Scores a row as its amount / 1000; NaN for the rows of `fail_arm`; `error` raises."""

    def __init__(self, fail_arm: int | None = None, error: Exception | None = None) -> None:
        self.rows: list[int] = []
        self.explained: list[list[str]] = []
        self.fail_arm, self.error = fail_arm, error

    async def score(self, rows: np.ndarray) -> np.ndarray:
        self.rows.append(len(rows))
        if self.error is not None:
            raise self.error
        out = rows[:, 1] / 1000.0
        if self.fail_arm is not None:
            out[rows[:, 0] == self.fail_arm] = np.nan
        return out

    async def explain(self, row: np.ndarray, arms: list[str]) -> list[dict[str, Any]]:
        self.explained.append(arms)
        return [{"model_version": arm, "unsupported": f"{arm}'s model is not a tree ensemble"}
                if arm == "model_b" else
                {"model_version": arm, "model_tag": "fraud_rf:aaa", "scale": "probability",
                 "base_value": 0.1, "contributions": {}, "output": 0.3,
                 "fraud_probability": 0.3, "threshold": 0.5, "is_fraud": False, "reasons": []}
                for arm in arms]


class Counts:
    """The metrics' calls, kept (fraud.serving.telemetry.Metrics in the service)."""

    def __init__(self) -> None:
        self.decisions: list[tuple[str, bool]] = []
        self.errors: list[str] = []
        self.explored: list[str] = []

    def observe_predictions(self, results: Any, seconds: float) -> None:
        assert seconds >= 0
        self.decisions += [(r.model_version, r.is_fraud) for r in results]

    def count_errors(self, arms: Any) -> None:
        self.errors += list(arms)

    def count_explored(self, arm: str, n: int = 1) -> None:
        self.explored += [arm] * n


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as led:
        yield led


def scoring_of(ledger: Ledger, router: Router, gate_problem: str | None = None,
               ) -> tuple[Scoring, Counts]:
    counts = Counts()
    experiment = Experiment(ABConfig(challenger_share=0.5), ARMS, ledger)
    calls = RouterCalls(router.score, router.score, batching=False)
    return Scoring(ABConfig(), experiment, counts, calls, gate_problem=gate_problem), counts


def user_of(scoring: Scoring, arm: str) -> str:
    return next(u for u in (f"user-{i}" for i in range(1000))
                if scoring.experiment.route(u) == arm)


def test_a_prediction_is_answered_once_committed_and_counted(ledger: Ledger) -> None:
    scoring, counts = scoring_of(ledger, Router())
    txn = {**EXAMPLE_TRANSACTION, "user_id": user_of(scoring, "model_b"), "amount": 900.0}
    answer = asyncio.run(scoring.predict(txn))
    assert (answer.model_version, answer.fraud_probability, answer.is_fraud) == (
        "model_b", 0.9, True)
    assert ledger.lookup(answer.request_id) is not None  # already in the ledger
    assert counts.decisions == [("model_b", True)]


def test_a_batch_keeps_its_order_in_one_router_call(ledger: Ledger) -> None:
    router = Router()
    scoring, counts = scoring_of(ledger, router)
    users = [user_of(scoring, "model_a"), user_of(scoring, "model_b")] * 3
    batch = [Transaction(**{**EXAMPLE_TRANSACTION, "user_id": u, "amount": 100.0 * (i + 1)})
             for i, u in enumerate(users)]
    answers = asyncio.run(scoring.predict_batch(batch))
    assert [a.fraud_probability for a in answers] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert [a.model_version for a in answers] == ["model_a", "model_b"] * 3
    assert router.rows == [6] and len(counts.decisions) == 6


def test_ungated_models_refuse_before_anything_is_scored(ledger: Ledger) -> None:
    router = Router()
    scoring, _ = scoring_of(ledger, router, gate_problem="no gate report at /x")
    with pytest.raises(NotReady, match=r"^service not ready: no gate report at /x$"):
        asyncio.run(scoring.predict(dict(EXAMPLE_TRANSACTION)))
    with pytest.raises(NotReady):
        asyncio.run(scoring.explain(dict(EXAMPLE_TRANSACTION), None, router.explain))
    assert router.rows == [] and router.explained == []


def test_a_ledger_that_refuses_writes_refuses_scoring_but_not_explaining(
        ledger: Ledger) -> None:
    router = Router()
    scoring, _ = scoring_of(ledger, router)
    ledger.problem = "OperationalError: disk I/O error"
    with pytest.raises(LedgerDown) as refused:
        asyncio.run(scoring.predict(dict(EXAMPLE_TRANSACTION)))
    assert str(refused.value) == ("ledger unavailable (LEDGER_UNAVAILABLE): nothing was "
                                  "decided; retry later")  # no store, no driver words
    assert router.rows == []
    txn = {**EXAMPLE_TRANSACTION, "user_id": user_of(scoring, "model_a")}
    assert asyncio.run(scoring.explain(txn, None, router.explain)).model_version == "model_a"


def test_a_failing_model_fails_its_rows_as_500_and_counts_them(ledger: Ledger) -> None:
    scoring, counts = scoring_of(ledger, Router(fail_arm=1))
    batch = [Transaction(**{**EXAMPLE_TRANSACTION, "user_id": user_of(scoring, arm)})
             for arm in ("model_a", "model_b")]
    with pytest.raises(ScoringFailed, match="model_b failed to score 1 of 2 rows"):
        asyncio.run(scoring.predict_batch(batch))
    assert counts.errors == ["model_b"] and counts.decisions == []
    ledger.flush()
    body, _, _ = scoring.experiment.report()
    assert body["model_b"]["errors"] == 1  # the experiment counts it against the arm


def test_an_unexpected_router_error_is_left_to_bentoml(ledger: Ledger) -> None:
    scoring, _ = scoring_of(ledger, Router(error=RuntimeError("router exploded")))
    with pytest.raises(RuntimeError, match="router exploded"):
        asyncio.run(scoring.predict(dict(EXAMPLE_TRANSACTION)))


def test_both_arms_are_explained_the_users_first_and_an_unexplainable_one_is_501(
        ledger: Ledger) -> None:
    router = Router()
    scoring, _ = scoring_of(ledger, router)
    txn = {**EXAMPLE_TRANSACTION, "user_id": user_of(scoring, "model_a")}
    answer = asyncio.run(scoring.explain(txn, "false", router.explain))
    assert answer.model_version == "model_a" and len(answer.explanations) == 1
    with pytest.raises(NotExplainable, match="model_b's model is not a tree ensemble"):
        asyncio.run(scoring.explain(txn, "true", router.explain))
    assert router.explained == [["model_a"], ["model_a", "model_b"]]


def test_a_bulks_undecided_rows_count_as_attempted_in_the_error_rate(ledger: Ledger) -> None:
    """Issue 21: 10 bulks of 100 rows, one row of one bulk failing. The other 99 rows of that
    bulk are not decided but were attempted: the error rate is 1/1000, not 1/901."""

    class OneBadRow(Router):
        async def score(self, rows: np.ndarray) -> np.ndarray:
            out = rows[:, 1] / 1000.0
            out[rows[:, 1] == 999.0] = np.nan
            return out

    scoring, counts = scoring_of(ledger, OneBadRow())
    users = [u for u in (f"user-{i}" for i in range(2000))
             if scoring.experiment.route(u) == "model_b"][:100]
    for b in range(10):
        batch = [Transaction(**{**EXAMPLE_TRANSACTION, "user_id": u,
                                "amount": 999.0 if (b, i) == (0, 7) else 100.0 + i})
                 for i, u in enumerate(users)]
        if b == 0:
            with pytest.raises(ScoringFailed, match="failed to score 1 of 100 rows"):
                asyncio.run(scoring.predict_batch(batch))
        else:
            asyncio.run(scoring.predict_batch(batch))
    assert counts.errors == ["model_b"] and len(counts.decisions) == 900
    ledger.flush()
    body, _, _ = scoring.experiment.report()
    assert body["model_b"]["errors"] == 1 and body["model_b"]["total_predictions"] == 900
    assert body["model_b"]["error_rate"]["value"] == pytest.approx(1 / 1000)

"""The scoring routes' work for one API worker: POST /predict, /predict_batch and /explain.

A scoring request is refused unless the worker serves (models that passed the gate, a ledger
that takes writes: fraud/serving/readiness.py), goes through the scoring path (coalesced
single rows, or one bulk call: fraud/serving/path.py), and answers only once its decisions
are committed; a failure leaves as the API error `api_error` maps it to. Decisions and
scoring errors are counted in the metrics. An explanation needs only gated models: nothing is
decided or stored.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from fraud.api.errors import api_errors
from fraud.api.responses import ExplainResponse, arms_to_explain, explain_response
from fraud.config import ABConfig
from fraud.experiment.live import Experiment
from fraud.experiment.state import ExperimentState
from fraud.schema import Arm, Prediction, Transaction, feature_vector, to_matrix
from fraud.serving.path import ScoringPath
from fraud.serving.readiness import check_serving
from fraud.serving.router_calls import RouterCalls

ExplainCall = Callable[[np.ndarray, list[Arm]], Awaitable[list[dict[str, Any]]]]


class ScoringMetrics(Protocol):
    def observe_predictions(self, results: Sequence[Prediction], seconds: float) -> None:
        """One request's decisions and its latency."""

    def count_errors(self, arms: Sequence[str]) -> None:
        """Rows a model failed to score, by arm."""

    def count_explored(self, arm: str, n: int = 1) -> None:
        """Would-be declines of one arm that exploration approved (once stored)."""


class Scoring:
    """Scores and explains for one API worker (create it in the worker, after the fork)."""

    def __init__(self, cfg: ABConfig, experiment: Experiment, metrics: ScoringMetrics,
                 calls: RouterCalls, *, gate_problem: str | None) -> None:
        self.experiment, self.ledger = experiment, experiment.ledger
        self.metrics, self.gate_problem = metrics, gate_problem
        experiment.on_explored = metrics.count_explored
        self.path = ScoringPath(experiment, calls.single, calls.bulk, coalesce=calls.coalesce,
                                max_rows=cfg.coalesce.max_rows,
                                max_waiting=cfg.coalesce.max_waiting,
                                linger=(cfg.coalesce.linger_ms / 1000, cfg.coalesce.linger_after,
                                        cfg.coalesce.linger_fill), on_errors=self._errors,
                                on_undecided=self._undecided)

    async def predict(self, fields: Mapping[str, Any]) -> Prediction:
        """One transaction's decision; `fields` were validated against Transaction already."""
        features = np.array([feature_vector(fields)], dtype=np.float64)
        return (await self.score([fields["user_id"]], features, bulk=False))[0]

    async def predict_batch(self, transactions: list[Transaction]) -> list[Prediction]:
        """The decisions of a bulk, in order, from one router call."""
        return await self.score([t.user_id for t in transactions], to_matrix(transactions),
                                bulk=True)

    async def score(self, user_ids: list[str], features: np.ndarray,
                    bulk: bool) -> list[Prediction]:
        """Decisions for the rows, committed to the ledger (a 200 means they are kept)."""
        with api_errors():
            check_serving(self.gate_problem, self.ledger)
            started = time.perf_counter()
            results = await self.path.score(user_ids, features, bulk)
        self.metrics.observe_predictions(results, time.perf_counter() - started)
        return results

    async def explain(self, fields: Mapping[str, Any], both: str | None,
                      explain: ExplainCall) -> ExplainResponse:
        """The user's arm model's explanation (`both`: "true" adds the other arm's), from the
        router's `explain(row, arms)`."""
        with api_errors():  # explaining needs no ledger, only models that passed the gate
            check_serving(self.gate_problem)
        arm = self.experiment.route(fields["user_id"], self.experiment.state)
        row = np.array(feature_vector(fields), dtype=np.float64)
        return explain_response(arm, await explain(row, arms_to_explain(arm, both)))

    def _errors(self, user_ids: list[str], arms: list[Arm], state: ExperimentState) -> None:
        self.experiment.record_errors(user_ids, arms, state)
        self.metrics.count_errors(arms)

    def _undecided(self, user_ids: list[str], arms: list[Arm], state: ExperimentState) -> None:
        """Rows of a request another row of which failed: attempted, neither decided nor
        failed (the error rate's denominator)."""
        self.experiment.record_errors(user_ids, arms, state, undecided=True)

"""BentoML wiring only: every decision lives in `fraud/` and is tested without a server.

FraudDetection (API: keys and limits, validation, A/B assignment, responses, stats)
  └── ABRouter (dependency, a direct and a batchable API: scores each row with its arm's
      model; holds the explainers and each arm's drift window, seeing every worker's traffic)
"""

from __future__ import annotations

import os

from fraud.serving import process

# Before anything loads scikit-learn's OpenMP runtime (fraud/serving/process.py says why).
os.environ.update(process.thread_defaults(os.environ))

import logging
import threading
import time
from typing import Annotated, Any

import bentoml
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from fraud.api import errors, logs, responses
from fraud.api.auth import KeyConfigError, log_start
from fraud.api.middleware import SecurityMiddleware, count_by_route, is_admin, keyed, scopes_of
from fraud.api.openapi import OpenAPIMiddleware, known_routes, published, swagger_description
from fraud.api.operations import EXPLORED_MAX, Operations
from fraud.api.pathlabels import bound_path_labels
from fraud.api.responses import ExplainResponse
from fraud.api.scoring import Scoring
from fraud.api.settings import middleware_options, security_settings
from fraud.config import load_ab_config
from fraud.experiment.live import Experiment
from fraud.experiment.watch import Watch
from fraud.schema import ARMS, Feedback, Prediction, ShareChange, Transaction
from fraud.serving import readiness, router_calls
from fraud.serving.card import served_card
from fraud.serving.families import load_estimator
from fraud.serving.models import ModelMismatch, ModelsMissing, resolve_arms
from fraud.serving.router import Router
from fraud.serving.telemetry import Metrics, RouterMetrics, count_rejection
from fraud.store.writer import Ledger

log = logging.getLogger("fraudserve")
AB = process.or_exit(load_ab_config, ValueError)  # a bad value: one line naming its field
ARM_MODELS = process.or_exit(lambda: resolve_arms(AB), ModelsMissing, ModelMismatch)
SECURITY = process.or_exit(lambda: security_settings(AB, os.environ), KeyConfigError, ValueError)
LEDGER = process.or_exit(process.checked_ledger_store, RuntimeError)  # REQUIRE_SHARED_LEDGER
GUARD = middleware_options(SECURITY)  # the keys, limits and buckets SecurityMiddleware applies
TAGS = {arm: ARM_MODELS[arm].tag for arm in ARMS}
CORS_ORIGINS = AB.cors.origins()
BatchRequest, BatchResponse = responses.batch_models(AB.max_batch_rows)


# No access log in the router: the API worker logs each request (docs/performance.md).
@bentoml.service(name="ABRouter", workers=1, logging={"access": {"enabled": False}},
                 runner_connection=router_calls.runner_connection())
class ABRouter:
    """Scores rows with both models: column 0 is the arm index, the rest the features."""

    model_a = bentoml.models.BentoModel(ARM_MODELS["model_a"].tag)
    model_b = bentoml.models.BentoModel(ARM_MODELS["model_b"].tag)

    def __init__(self) -> None:
        estimators = [load_estimator(m) for m in (self.model_a, self.model_b)]
        self.loaded_tags = [str(self.model_a.tag), str(self.model_b.tag)]
        self.arms = Router(AB, ARM_MODELS, estimators, RouterMetrics())
        process.tune_gc()
        threading.Thread(target=self.arms.publish_drift_every, name="drift-gauges",
                         daemon=True).start()

    @bentoml.api
    def loaded(self) -> list[str]:
        """The model tags this router loaded and scores with (for /health)."""
        return self.loaded_tags

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=30_000)
    def score(self, rows: np.ndarray) -> np.ndarray:
        """Adaptive-batched scoring of coalesced batches (FRAUDSERVE_BATCHING=1)."""
        return self.arms.score(rows)

    @bentoml.api
    def score_bulk(self, rows: np.ndarray) -> np.ndarray:
        """One call, no batching wait: the default for every call."""
        return self.arms.score(rows)

    @bentoml.api
    def explain(self, row: np.ndarray, arms: list[str]) -> list[dict[str, Any]]:
        """One feature row explained by the models of `arms` in order (or why one cannot)."""
        return responses.explanation_entries(row, arms, ARM_MODELS, self.arms.explainers)

    @bentoml.api
    def drift_report(self) -> dict[str, Any]:
        """Each arm's window against its model's training reference (if it has one)."""
        return responses.drift_entries(ARM_MODELS, self.arms.drift)


router_calls.state_json_media_type(ABRouter.apis.values())

# BentoML's Swagger UI at / is the one UI (FastAPI's /docs, /redoc, /openapi.json would be
# unlisted admin-only routes documenting half the service); its errors use the one shape.
app = FastAPI(title="fraudserve operations", docs_url=None, redoc_url=None, openapi_url=None)
app.add_exception_handler(RequestValidationError, errors.fastapi_validation_handler)
app.add_exception_handler(HTTPException, errors.http_error_handler)


@bentoml.service(name="FraudDetection", workers=2, traffic={"timeout": 30})
@bentoml.asgi_app(app, path="/")
class FraudDetection:
    """Fraud scores for payment transactions, with a sticky champion/challenger A/B test."""

    router = bentoml.depends(ABRouter)

    def __init__(self) -> None:
        logs.install()
        started = time.monotonic()
        self.metrics = Metrics()
        self.ledger = Ledger(LEDGER)
        self.experiment = Experiment(AB, ARM_MODELS, self.ledger)
        self.gate_problem = readiness.readiness_problem(list(TAGS.values()))
        if self.gate_problem:
            log.error("not ready: %s", self.gate_problem)
        calls = router_calls.RouterCalls(lambda rows: self.router.to_async.score(rows),
                                         lambda rows: self.router.to_async.score_bulk(rows),
                                         batching=process.batching_enabled(),
                                         coalesce=process.coalescing_enabled())
        self.scoring = Scoring(AB, self.experiment, self.metrics, calls,
                               gate_problem=self.gate_problem)
        self.ops = Operations(AB, self.experiment, TAGS, gate_problem=self.gate_problem,
                              card=served_card(ARM_MODELS), started=started)
        if bentoml.server_context.worker_index in (None, 1):  # once per server, not per worker
            log_start(SECURITY.keys, log)
        self._stop = threading.Event()
        process.tune_gc()
        threading.Thread(target=Watch(self.experiment, self.metrics).run, args=(self._stop,),
                         name="experiment-watch", daemon=True).start()

    def __is_ready__(self) -> bool:
        return readiness.is_ready(self.gate_problem, self.ledger)

    @bentoml.api(route="/predict", input_spec=Transaction)
    async def predict(self, **fields: Any) -> Prediction:
        """Score one transaction (the reference's flat body) with the user's A/B arm."""
        # BentoML validated `fields` against Transaction already: no second validation here.
        return await self.scoring.predict(fields)

    @bentoml.api(route="/explain", input_spec=Transaction)
    async def explain(self, ctx: bentoml.Context, **fields: Any) -> ExplainResponse:
        """Why the user's arm model scores this transaction as it does: per-feature
        contributions that add up to the score, and reason codes. `?both=true`: both models,
        the assigned arm first. Nothing is decided or stored."""
        return await self.scoring.explain(fields, ctx.request.query_params.get("both"),
                                          lambda row, arms: self.router.to_async.explain(row, arms))

    if process.noop_enabled():
        @bentoml.api(route="/noop", input_spec=Transaction)
        async def noop(self, **fields: Any) -> dict[str, str]:
            """Validates a transaction and scores nothing: the framework's floor, for
            benchmarks (on with FRAUDSERVE_NOOP=1, which `make bench` sets)."""
            return {"status": "ok"}

    @bentoml.api(route="/predict_batch", input_spec=BatchRequest)
    async def predict_batch(self, transactions: list[Transaction]) -> BatchResponse:
        """Score up to max_batch_rows transactions in one call; results keep the order."""
        return BatchResponse(results=await self.scoring.predict_batch(transactions))

    @bentoml.api(route="/feedback", input_spec=Feedback)
    def feedback(self, ctx: bentoml.Context, **label: Any) -> dict[str, Any]:
        """Attach the true label (and its source) to a decision: 404 unknown id, 409 conflict."""
        ctx.response.status_code, body = self.ops.feedback(**label)
        return body

    # -- operations routes (GET, as in the reference): fraud/api/operations.py ----------------

    @app.get("/health", tags=["operations"], summary="Status, models, uptime; 503 until ready")
    async def health(self) -> JSONResponse:
        return await self.ops.health(lambda: self.router.to_async.loaded())

    @app.get("/ab-stats", tags=["operations"], summary="The current experiment: per-arm "
             "counts, per-user metrics, sequential tests, guardrails")
    def ab_stats(self, request: Request) -> Any:
        return self.ops.ab_stats(admin="admin" in scopes_of(request), fresh=keyed(request))

    @app.get("/report", tags=["operations"], response_class=HTMLResponse,
             summary="The current experiment as one HTML page with charts")
    async def report(self, request: Request) -> Any:
        return await self.ops.report(lambda: self.router.to_async.drift_report(),
                                     admin="admin" in scopes_of(request), fresh=keyed(request))

    @app.get("/experiments", tags=["operations"], summary="Every experiment, newest first, "
             "with its final statistics and verdict")
    def experiments(self) -> Any:
        return self.ops.experiments()

    @app.get("/experiments/current/disagreements", tags=["operations"],
             summary="Shadow mode: the latest transactions the two models decided differently")
    def disagreements(self, limit: Annotated[int, Query(ge=1, le=AB.shadow.disagreements_max)]
                      = 50) -> Any:
        return self.ops.disagreements(limit)

    @app.get("/experiments/current/explored", tags=["operations"], summary="Exploration: "
             "the latest would-be declines approved instead, with their propensity")
    def explored(self, limit: Annotated[int, Query(ge=1, le=EXPLORED_MAX)] = 50) -> Any:
        return self.ops.explored(limit)

    @app.get("/drift", tags=["operations"], summary="Per arm and feature: PSI, KS and a "
             "drift verdict of the live window against the model's training data")
    async def drift(self, request: Request) -> Any:
        return await self.ops.drift(lambda: self.router.to_async.drift_report(),
                                    fresh=keyed(request))

    @app.get("/model-card", tags=["operations"], summary="The served models' card: intended "
             "use, data, metrics overall and per slice, caveats; thresholds for admin")
    def card_page(self, request: Request) -> Any:
        return self.ops.model_card(request.headers.get("accept"), admin=is_admin(request))

    # -- admin (an API key with the admin scope: SecurityMiddleware checks it) ----------------

    @app.post("/admin/rollback", tags=["admin"], summary="Send all traffic to the champion")
    def admin_rollback(self) -> Any:
        return self.ops.rollback()

    @app.post("/admin/resume", tags=["admin"], summary="Resume the experiment after a rollback")
    def admin_resume(self, force: bool = False) -> Any:
        return self.ops.resume(force=force)

    @app.post("/admin/share", tags=["admin"], summary="Change the challenger's share of users")
    def admin_share(self, change: ShareChange) -> Any:
        return self.ops.share(change.challenger_share)


# First added is outermost: CORS preflights first (they pay the client address's bucket),
# then keys, rate and body size; BentoML's metrics label a path not in the routes "other".
if CORS_ORIGINS:
    FraudDetection.add_asgi_middleware(SecurityMiddleware, **GUARD, preflight_only=True)
    FraudDetection.add_asgi_middleware(
        CORSMiddleware, allow_origins=CORS_ORIGINS, allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"], max_age=AB.cors.max_age_s)
FraudDetection.add_asgi_middleware(SecurityMiddleware, **GUARD, on_reject=count_by_route(
    bound_path_labels(known_routes(app, FraudDetection, ABRouter)), count_rejection))
FraudDetection.add_asgi_middleware(OpenAPIMiddleware, patch=published(
    keys_on=not SECURITY.keys.open, limits=SECURITY.limits, rate=SECURITY.rate,
    description=swagger_description(), reports_need_key=SECURITY.reports_need_key))

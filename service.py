"""BentoML wiring only: every decision lives in `fraud/` and is tested without a server.

FraudDetection (API: keys and limits, validation, A/B assignment, responses, stats)
  └── ABRouter (dependency with a batchable API: scores each row with its arm's model; holds
      the explainers and each arm's drift window, which see every API worker's traffic)
"""

from __future__ import annotations

import os

# One OpenMP thread per process, before scikit-learn loads its OpenMP runtime: the boosting
# model's predict otherwise spins a thread per core ~300 times per call, and when the other
# core is busy the router burns its CPU waiting (measured: peak 47 -> ~220 requests/s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import asyncio
import gc
import logging
import sys
import threading
import time
from typing import Annotated, Any

import bentoml
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from fraud import model_card
from fraud.api import logs
from fraud.api.auth import KeyConfigError, load_keys, log_start
from fraud.api.errors import (
    FEEDBACK_ANSWERS,
    LedgerDown,
    NotExplainable,
    NotReady,
    NotStorable,
    ScoringFailed,
    error_body,
    fastapi_validation_handler,
)
from fraud.api.middleware import LimitSettings, SecurityMiddleware, scopes_of
from fraud.api.openapi import (
    ROUTE_STATUSES,
    OpenAPIMiddleware,
    patch_openapi,
    route_paths,
    swagger_description,
)
from fraud.api.ratelimit import RateLimiter, RateSettings
from fraud.api.responses import DriftResponse, ExplainResponse, arm_drift, model_explanation
from fraud.api.views import ab_stats_view, wants_json
from fraud.config import PROJECT_ROOT, load_ab_config
from fraud.drift import DriftMonitor
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.experiment.look import list_experiments
from fraud.experiment.looks import look_of, marks_of
from fraud.explain import ExplainUnsupported, TreeExplainer
from fraud.report.card import to_markdown as card_markdown
from fraud.report.page import render
from fraud.schema import (
    ARMS,
    EXAMPLE_TRANSACTION,
    Feedback,
    Prediction,
    ShareChange,
    Transaction,
    feature_vector,
    to_matrix,
)
from fraud.serving.coalesce import Overloaded
from fraud.serving.fastpredict import scorer
from fraud.serving.models import ModelMismatch, ModelsMissing, resolve_arms
from fraud.serving.path import RowsFailed, ScoringPath
from fraud.serving.process import batching_enabled, coalescing_enabled, ledger_store
from fraud.serving.readiness import readiness_problem, report_path
from fraud.serving.router import score_by_arm, score_pair
from fraud.serving.telemetry import Metrics, RouterMetrics, count_rejection
from fraud.store.records import DecisionRejected, LedgerUnavailable
from fraud.store.writer import Ledger

log = logging.getLogger("fraudserve")
AB = load_ab_config()
try:
    ARM_MODELS = resolve_arms(AB)
except (ModelsMissing, ModelMismatch) as exc:
    print(f"fraudserve: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
try:
    KEYS = load_keys()
    LIMITS = LimitSettings.from_mapping(AB.limits.model_dump(exclude_none=True), os.environ,
                                        max_batch_rows=AB.max_batch_rows)
    RATE = RateSettings.from_mapping(AB.rate_limit.model_dump(exclude_none=True), os.environ)
except (KeyConfigError, ValueError) as exc:
    print(f"fraudserve: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
ARM_INDEX = {arm: i for i, arm in enumerate(ARMS)}
CORS_ORIGINS = AB.cors.origins()
# The router's own calls never recycle their connection: BentoML 1.4.31-1.4.40 (issue #5540)
# aborts in-flight calls when it does, which surfaced as 500s under load.
NEVER = 2**31 - 1
BATCH_WHEN_INFLIGHT = 2
# POST /noop (validation only: the framework's floor) exists only when the benchmark asks for
# it; BentoML collects APIs when the class is defined, so without it there is no route at all.
NOOP = os.environ.get("FRAUDSERVE_NOOP") == "1"
# `make build` writes the card of the gated models here (bundled in the bento).
CARD_FILE = PROJECT_ROOT / "reports" / "build" / "model_card.json"


def tune_gc() -> None:
    """Keep full garbage collections off the request path.

    Measured: with CPython's defaults a full collection ran every few seconds under load and
    walked the loaded models and BentoML's app, stalling every request in flight 40-110 ms
    (p99 at 100 req/s ~110-125 ms against p95 ~9 ms). Objects alive at start-up are frozen
    (now, and again once the server has finished starting), and collections run less often.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    later = threading.Timer(15.0, gc.freeze)
    later.daemon = True
    later.start()


# No access log in the router: the API worker logs every request already, and a second line
# per router call cost ~10-28% of the router's CPU (py-spy, docs/performance.md).
@bentoml.service(name="ABRouter", workers=1, logging={"access": {"enabled": False}},
                 runner_connection={"max_requests": NEVER, "max_age": float(NEVER)})
class ABRouter:
    """Scores rows with both models: column 0 is the arm index, the rest the features."""

    model_a = bentoml.models.BentoModel(ARM_MODELS["model_a"].tag)
    model_b = bentoml.models.BentoModel(ARM_MODELS["model_b"].tag)

    def __init__(self) -> None:
        estimators = [bentoml.sklearn.load_model(self.model_a),
                      bentoml.sklearn.load_model(self.model_b)]
        self.scorers = [scorer(e) for e in estimators]
        self.loaded_tags = [str(self.model_a.tag), str(self.model_b.tag)]
        self.explainers = [_explainer(e) for e in estimators]  # None: not a tree ensemble
        self.drift = [_monitor(ARM_MODELS[a]) for a in ARMS]  # None: no drift_reference
        self.metrics = RouterMetrics()
        tune_gc()
        threading.Thread(target=self._publish_drift, name="drift-gauges", daemon=True).start()

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Per row its arm's score; in shadow mode also the other model's (two columns).
        Every scored row joins its arm's drift window (explanations do not come here)."""
        for i, monitor in enumerate(self.drift):
            if monitor is not None:
                monitor.observe(rows[rows[:, 0] == i, 1:])
        if AB.shadow.enabled:
            return score_pair(self.scorers, rows)
        return score_by_arm(self.scorers, rows)

    @bentoml.api
    def loaded(self) -> list[str]:
        """The model tags this router loaded and scores with (for /health)."""
        return self.loaded_tags

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=30_000)
    def score(self, rows: np.ndarray) -> np.ndarray:
        """Adaptive-batched scoring of coalesced batches from the API workers."""
        self.metrics.observe(len(rows))
        return self._score(rows)

    @bentoml.api
    def score_bulk(self, rows: np.ndarray) -> np.ndarray:
        """One call for a lone row or a bulk request (no batching wait)."""
        self.metrics.observe(len(rows))
        return self._score(rows)

    @bentoml.api
    def explain(self, row: np.ndarray, arms: list[str]) -> list[dict[str, Any]]:
        """Explanations of one feature row by the models of `arms`, in that order; an arm whose
        model cannot be explained is {"model_version": arm, "unsupported": why}."""
        out: list[dict[str, Any]] = []
        for arm in arms:
            explainer, model = self.explainers[ARM_INDEX[arm]], ARM_MODELS[arm]
            if explainer is None:
                out.append({"model_version": arm, "unsupported": f"{arm}'s model "
                            f"{model.tag} is not a tree ensemble"})
                continue
            entry = model_explanation(arm, model.tag, model.threshold, explainer.explain(row))
            out.append(entry.model_dump())
        return out

    @bentoml.api
    def drift_report(self) -> dict[str, Any]:
        """Each arm's window against its model's training reference (arms without one are
        left out)."""
        return {arm: arm_drift(ARM_MODELS[arm].tag, m.report()).model_dump()
                for arm, m in zip(ARMS, self.drift, strict=True) if m is not None}

    def _publish_drift(self) -> None:
        while True:
            time.sleep(AB.drift.check_interval_s)
            for arm, monitor in zip(ARMS, self.drift, strict=True):
                if monitor is not None:
                    try:
                        self.metrics.publish_drift(arm, monitor.report())
                    except Exception:  # keep publishing; the next round retries
                        log.exception("drift gauges of %s failed", arm)


# BentoML works out an array or list output's media type from its JSON schema, building a
# pydantic TypeAdapter and the schema on every response (~12-17% of the router's CPU). The
# answer is always "application/json"; state it once.
for _api in ABRouter.apis.values():
    if _api.output_spec.media_type is None and _api.output_spec.mime_type() == "application/json":
        _api.output_spec.media_type = "application/json"


def _explainer(estimator: Any) -> TreeExplainer | None:
    """The model's TreeSHAP explainer (its leaf table is built once, here), or None."""
    try:
        return TreeExplainer(estimator, top=AB.explain.reasons)
    except ExplainUnsupported:
        return None


def _monitor(model: ArmModel) -> DriftMonitor | None:
    """The arm's drift window over its model's training reference; None for a model trained
    before references were stored (retrain: make train)."""
    reference = model.metadata.get("drift_reference")
    return DriftMonitor(reference, AB.drift.settings()) if reference else None


# BentoML's Swagger UI at / is the one UI; FastAPI's own /docs, /redoc and /openapi.json would
# be unlisted routes (admin only) documenting half the service, so they are off.
app = FastAPI(title="fraudserve operations", docs_url=None, redoc_url=None, openapi_url=None)
# Validation errors of the operations routes answer 400 in the one error shape, like the APIs,
# and so do FastAPI's own HTTP errors (an unparseable body: {"detail": "..."} otherwise).
app.add_exception_handler(RequestValidationError, fastapi_validation_handler)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code,
                        headers=exc.headers)


app.add_exception_handler(StarletteHTTPException, _http_error)


class BatchRequest(BaseModel):
    """A bulk of transactions, scored in order."""

    transactions: list[Transaction] = Field(
        ..., min_length=1, max_length=AB.max_batch_rows,
        description=f"1 to {AB.max_batch_rows} transactions (configs/ab.yaml max_batch_rows).",
        examples=[[EXAMPLE_TRANSACTION, {**EXAMPLE_TRANSACTION, "user_id": "user_456",
                                         "amount": 12.5, "hour": 14, "merchant_risk": 0.1,
                                         "card_age_days": 900, "distance_km": 3,
                                         "num_recent_txns": 1, "is_international": 0}]])


class BatchResponse(BaseModel):
    """One result per transaction, in request order."""

    results: list[Prediction]


@bentoml.service(name="FraudDetection", workers=2, traffic={"timeout": 30})
@bentoml.asgi_app(app, path="/")
class FraudDetection:
    """Fraud scores for payment transactions, with a sticky champion/challenger A/B test."""

    router = bentoml.depends(ABRouter)

    def __init__(self) -> None:
        logs.install()
        self.started = time.monotonic()
        self.metrics = Metrics()
        self.ledger = Ledger(ledger_store())
        self.experiment = Experiment(AB, ARM_MODELS, self.ledger)
        self.tags = [ARM_MODELS[a].tag for a in ARMS]
        self.batching = batching_enabled()
        self.coalesce = coalescing_enabled()
        self.inflight = 0  # this worker's router calls under way
        self.scoring = ScoringPath(self.experiment, self._router_single, self._router_bulk,
                                   coalesce=self.coalesce, max_rows=AB.coalesce.max_rows,
                                   max_waiting=AB.coalesce.max_waiting,
                                   on_errors=self._count_errors)
        self.not_ready = readiness_problem(self.tags)
        if self.not_ready:
            log.error("not ready: %s", self.not_ready)
        self.card, self.card_source, self.card_problem = _served_card()
        self.card_markdown = (card_markdown({**self.card, "source": self.card_source})
                              if self.card else "")
        if bentoml.server_context.worker_index in (None, 1):  # once per server, not per worker
            log_start(KEYS, log)
        self._stop = threading.Event()
        tune_gc()
        threading.Thread(target=self._watch, name="experiment-watch", daemon=True).start()

    def _watch(self) -> None:
        """Every second: shared state; every check interval: guardrails and gauges."""
        last_check = 0.0
        failures = 0
        while not self._stop.wait(1.0):
            if self.ledger.problem:
                self.ledger.probe()  # refusing traffic: find out when writes work again
            self.metrics.ledger_up.set(0 if self.ledger.problem else 1)
            self.metrics.ledger_failures.inc(self.ledger.write_failures - failures)
            failures = self.ledger.write_failures
            try:
                self.experiment.refresh()
                if time.monotonic() - last_check >= AB.guardrails.check_interval_s:
                    last_check = time.monotonic()
                    report, _ = self.experiment.enforce_guardrails()
                    self.metrics.publish(report)
                    self._save_look(report)
                    self._prune()
            except Exception:  # keep watching; the next round retries
                log.exception("experiment watch failed")

    def _save_look(self, report: dict[str, Any]) -> None:
        """The report page's history: this check's look, unless another worker or replica
        stored one within half a check interval (fraud/store/history.py)."""
        look = look_of(report)
        self.ledger.save_look(self.experiment.id, look, marks=marks_of(look),
                              min_gap_s=AB.guardrails.check_interval_s / 2,
                              max_looks=AB.report.max_looks)

    def _prune(self) -> None:
        """Retention: delete decisions (and the report's looks) past the horizon, a few small
        batches per check."""
        keep = AB.retention
        if keep.decisions_days is not None:
            horizon = time.time() - keep.decisions_days * 86_400
            self.ledger.prune(horizon, batch=keep.batch_rows,
                              max_batches=keep.max_batches_per_check)
            self.ledger.prune_looks(horizon)

    def __is_ready__(self) -> bool:
        return self.not_ready is None and self.ledger.problem is None

    def _check_ready(self) -> None:
        if self.not_ready:
            raise NotReady(f"service not ready: {self.not_ready}")
        if self.ledger.problem:
            raise LedgerDown(f"ledger unavailable ({self.ledger.where}): {self.ledger.problem}")

    async def _score(self, user_ids: list[str], features: np.ndarray,
                     bulk: bool) -> list[Prediction]:
        self._check_ready()
        started = time.perf_counter()
        try:  # a 200 means the decisions are committed (one transaction per coalesced batch)
            results = await self.scoring.score(user_ids, features, bulk)
        except RowsFailed as exc:
            raise ScoringFailed(str(exc)) from None
        except Overloaded as exc:
            raise LedgerDown(f"overloaded, nothing was decided: {exc}") from None
        except LedgerUnavailable as exc:
            raise LedgerDown(f"ledger unavailable, nothing was decided: {exc}") from None
        except DecisionRejected as exc:
            raise NotStorable(f"user_id or another text field cannot be stored, nothing was "
                              f"decided: {exc}") from None
        seconds = time.perf_counter() - started
        for arm in {r.model_version for r in results}:
            self.metrics.observe(arm, [r.is_fraud for r in results if r.model_version == arm],
                                 seconds)
        return results

    def _count_errors(self, user_ids: list[str], arms: list[Any], state: Any) -> None:
        self.experiment.record_errors(user_ids, arms, state)
        for arm in ARMS:
            n = sum(1 for a in arms if a == arm)
            if n:
                self.metrics.errors.labels(model_version=arm).inc(n)

    async def _router_single(self, rows: np.ndarray) -> np.ndarray:
        # The router's adaptive batching only pays once calls queue up: a lone row goes
        # straight in (no batching wait); a coalesced batch (this worker is under load) joins
        # the router's adaptive batches, which merge both workers' calls. Without coalescing,
        # the same rule counts this worker's calls under way.
        self.inflight += 1
        try:
            busy = len(rows) > 1 if self.coalesce else self.inflight > BATCH_WHEN_INFLIGHT
            if self.batching and busy:
                return await self.router.to_async.score(rows)
            return await self.router.to_async.score_bulk(rows)
        finally:
            self.inflight -= 1

    async def _router_bulk(self, rows: np.ndarray) -> np.ndarray:
        return await self.router.to_async.score_bulk(rows)

    @bentoml.api(route="/predict", input_spec=Transaction)
    async def predict(self, **fields: Any) -> Prediction:
        """Score one transaction (the reference's flat body) with the user's A/B arm."""
        # BentoML validated `fields` against Transaction already: no second validation here.
        features = np.array([feature_vector(fields)], dtype=np.float64)
        return (await self._score([fields["user_id"]], features, bulk=False))[0]

    @bentoml.api(route="/explain", input_spec=Transaction)
    async def explain(self, ctx: bentoml.Context, **fields: Any) -> ExplainResponse:
        """Why the user's arm model scores this transaction as it does: per-feature
        contributions that add up to the score, and reason codes. `?both=true`: both models,
        the assigned arm first. Nothing is decided or stored."""
        if self.not_ready:  # explaining needs no ledger, only models that passed the gate
            raise NotReady(f"service not ready: {self.not_ready}")
        arm = self.experiment.route(fields["user_id"], self.experiment.state)
        both = ctx.request.query_params.get("both", "false").lower() in ("1", "true", "yes")
        arms = [arm, *(a for a in ARMS if a != arm)] if both else [arm]
        row = np.array(feature_vector(fields), dtype=np.float64)
        entries = await self.router.to_async.explain(row, arms)
        unsupported = [e["unsupported"] for e in entries if "unsupported" in e]
        if unsupported:
            raise NotExplainable("; ".join(unsupported))
        return ExplainResponse(model_version=arm, explanations=entries)

    if NOOP:
        @bentoml.api(route="/noop", input_spec=Transaction)
        async def noop(self, **fields: Any) -> dict[str, str]:
            """Validates a transaction and scores nothing: the framework's floor, for
            benchmarks (on with FRAUDSERVE_NOOP=1, which `make bench` sets)."""
            return {"status": "ok"}

    @bentoml.api(route="/predict_batch", input_spec=BatchRequest)
    async def predict_batch(self, transactions: list[Transaction]) -> BatchResponse:
        """Score up to max_batch_rows transactions in one call; results keep the order."""
        return BatchResponse(results=await self._score(
            [t.user_id for t in transactions], to_matrix(transactions), bulk=True))

    @bentoml.api(route="/feedback", input_spec=Feedback)
    def feedback(self, request_id: str, is_fraud: bool, ctx: bentoml.Context) -> dict[str, Any]:
        """Attach the true label to an earlier decision: 404 unknown id, 409 conflicting label."""
        try:
            outcome = self.ledger.label(request_id, is_fraud)
        except (LedgerUnavailable, *self.ledger.errors) as exc:
            ctx.response.status_code = 503
            return {"request_id": request_id, "error": f"ledger unavailable "
                    f"({self.ledger.where}): {exc}; the label was not stored"}
        status, body = FEEDBACK_ANSWERS[outcome]
        ctx.response.status_code = status
        return {"request_id": request_id, "is_fraud": is_fraud, **body}

    # -- operations routes (GET, as in the reference) ---------------------------------------

    @app.get("/health", tags=["operations"], summary="Status, models, uptime; 503 until ready")
    async def health(self) -> JSONResponse:
        try:  # what the router really loaded, not what was configured
            loaded = await asyncio.wait_for(self.router.to_async.loaded(), timeout=2.0)
        except Exception as exc:
            log.warning("health: the router did not say which models it loaded: %s", exc)
            loaded = []
        body = {
            "status": "healthy" if self.not_ready is None else "not_ready",
            "models_loaded": sorted(loaded) == sorted(self.tags),
            "models": {arm: ARM_MODELS[arm].tag for arm in ARMS},
            "uptime_seconds": round(time.monotonic() - self.started, 1),
        }
        if self.not_ready:
            body["reason"] = self.not_ready
        return JSONResponse(body, status_code=200 if self.not_ready is None else 503)

    @app.get("/ab-stats", tags=["operations"], summary="The current experiment: per-arm "
             "counts, per-user metrics, sequential tests, guardrails")
    def ab_stats(self, request: Request) -> Any:
        try:
            body, _, _ = self.experiment.report()
        except (LedgerUnavailable, *self.ledger.errors) as exc:
            return self._ledger_down(exc)
        return ab_stats_view(body, admin="admin" in scopes_of(request))

    @app.get("/report", tags=["operations"], response_class=HTMLResponse,
             summary="The current experiment as one HTML page with charts")
    async def report(self, request: Request) -> Any:
        try:
            body, looks = await asyncio.to_thread(self._report_data)
        except (LedgerUnavailable, *self.ledger.errors) as exc:
            return self._ledger_down(exc)
        drift: dict[str, Any] | None
        try:
            drift = await self.router.to_async.drift_report() or None
        except Exception as exc:  # the page still shows the experiment
            log.exception("report: the drift report failed")
            drift = {"error": f"the router did not answer ({type(exc).__name__})"}
        return HTMLResponse(render(ab_stats_view(body, admin="admin" in scopes_of(request)),
                                   looks, drift))

    def _report_data(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body, _, _ = self.experiment.report()
        return body, self.ledger.looks(self.experiment.id)

    @app.get("/experiments", tags=["operations"], summary="Every experiment, newest first, "
             "with its final statistics and verdict")
    def experiments(self) -> Any:
        try:
            return {"current": self.experiment.id,
                    "experiments": list_experiments(AB, self.ledger)}
        except (LedgerUnavailable, *self.ledger.errors) as exc:
            return self._ledger_down(exc)

    @app.get("/experiments/current/disagreements", tags=["operations"],
             summary="Shadow mode: the latest transactions the two models decided differently")
    def disagreements(self, limit: Annotated[int, Query(ge=1, le=AB.shadow.disagreements_max)]
                      = 50) -> Any:
        try:
            return {"experiment": self.experiment.id, "shadow": AB.shadow.enabled,
                    "disagreements": self.experiment.disagreements(limit)}
        except (LedgerUnavailable, *self.ledger.errors) as exc:
            return self._ledger_down(exc)

    @app.get("/drift", tags=["operations"], summary="Per arm and feature: PSI, KS and a "
             "drift verdict of the live window against the model's training data")
    async def drift(self) -> Any:
        arms = await self.router.to_async.drift_report()
        if not arms:
            return JSONResponse({"error": "no model carries a drift reference: retrain "
                                          "(make train)"}, status_code=503)
        return DriftResponse(arms=arms).model_dump()

    @app.get("/model-card", tags=["operations"], summary="The served models' card: intended "
             "use, data and splits, metrics overall and per slice, thresholds, caveats")
    def card_page(self, request: Request) -> Any:
        if self.card is None:
            return JSONResponse(error_body(f"no model card: {self.card_problem}"),
                                status_code=503)
        headers = {"X-Model-Card-Source": self.card_source, "Vary": "Accept"}
        if wants_json(request.headers.get("accept")):
            return JSONResponse({**self.card, "source": self.card_source}, headers=headers)
        return Response(self.card_markdown, media_type="text/markdown; charset=utf-8",
                        headers=headers)

    def _ledger_down(self, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"ledger unavailable ({self.ledger.where}): {exc}"},
                            status_code=503)

    # -- admin (an API key with the admin scope: SecurityMiddleware checks it) ----------------

    @app.post("/admin/rollback", tags=["admin"], summary="Send all traffic to the champion")
    def admin_rollback(self) -> Any:
        return self._admin_call(lambda: self.experiment.rollback("manual (admin)"))

    @app.post("/admin/resume", tags=["admin"], summary="Resume the experiment after a rollback")
    def admin_resume(self, force: bool = False) -> Any:
        def resume() -> Any:
            refusal = self.experiment.resume_refusal(force)
            if refusal:
                return JSONResponse({"error": refusal}, status_code=409)
            return self.experiment.resume(force=force)
        return self._admin_call(resume)

    @app.post("/admin/share", tags=["admin"], summary="Change the challenger's share of users")
    def admin_share(self, change: ShareChange) -> Any:
        return self._admin_call(lambda: self.experiment.set_share(change.challenger_share))

    def _admin_call(self, action: Any) -> Any:
        result = action()
        if isinstance(result, JSONResponse):
            return result
        return {"experiment": self.experiment.refresh().to_json()}


def _served_card() -> tuple[dict[str, Any] | None, str, str | None]:
    """(card, source, problem): the bundled card when it describes the served models, else
    one made now from their metadata and the gate report."""
    models = {arm: {"tag": m.tag, "metadata": m.metadata} for arm, m in ARM_MODELS.items()}
    try:
        card, source = model_card.for_served(models, CARD_FILE, report_path())
    except Exception as exc:  # the route answers 503 saying why; scoring is unaffected
        log.exception("model card failed")
        return None, "none", f"{exc.__class__.__name__}: {exc}"
    return card, source, None


# -- security: keys, limits and the published contract (fraud/auth, middleware, openapi) --------

# Named as themselves in fraud_rejected_requests; any other path (a scanner's guesses) is
# "other", so the metric's label set stays bounded.
KNOWN_ROUTES = frozenset(route_paths(app.routes)
                         | {api.route for api in FraudDetection.apis.values()})


DESCRIPTION = swagger_description()


def _published(doc: dict[str, Any]) -> dict[str, Any]:
    out = patch_openapi(doc, keys_on=not KEYS.open, limits=LIMITS, rate=RATE,
                        statuses=ROUTE_STATUSES)
    if DESCRIPTION:
        out.setdefault("info", {})["description"] = DESCRIPTION
    return out


def _count_rejection(path: str, status: int, reason: str) -> None:
    count_rejection(path if path in KNOWN_ROUTES else "other", reason)


# First added is outermost: CORS preflights are answered first (a browser sends them without
# credentials), then keys, rate and body size are checked before anything else runs.
if CORS_ORIGINS:
    FraudDetection.add_asgi_middleware(
        CORSMiddleware, allow_origins=CORS_ORIGINS, allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"], max_age=AB.cors.max_age_s)
FraudDetection.add_asgi_middleware(SecurityMiddleware, keys=KEYS, limits=LIMITS,
                                   limiter=RateLimiter(RATE), on_reject=_count_rejection)
FraudDetection.add_asgi_middleware(OpenAPIMiddleware, patch=_published)

"""The answers of the operations, admin and feedback routes for one API worker: plain methods
over its experiment and ledger, each returning what the route sends (a body, or a Response).

/ab-stats, /report and /drift answer a caller without a key (`fresh` False) from a cache
computed at most once per guardrail check interval (fraud/api/cache.py): however many such
callers come, the ledger and the router see one computation per interval and worker.

A route that reads or writes the ledger answers 503 saying where the ledger is and why when
it cannot answer (`ledger_down`; /feedback in its own shape). What only the router knows (the
models it loaded, the drift windows) comes in as an async call, so nothing here needs BentoML.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from fraud.api.cache import Cache
from fraud.api.errors import FEEDBACK_ANSWERS, ledger_down, ledger_down_body
from fraud.api.views import ab_stats_view, card_response, drift_view, health_view
from fraud.config import ABConfig
from fraud.experiment.live import Experiment
from fraud.experiment.look import list_experiments
from fraud.report.page import render
from fraud.serving.card import ServedCard
from fraud.store.records import LedgerUnavailable

log = logging.getLogger("fraudserve")
EXPLORED_MAX = 1000  # GET /experiments/current/explored?limit= at most this
HEALTH_TIMEOUT_S = 2.0  # /health waits this long for the router to say what it loaded
Call = Callable[[], Awaitable[Any]]


class Operations:
    """One worker's operations routes. `tags` are the served models (arm -> tag)."""

    def __init__(self, cfg: ABConfig, experiment: Experiment, tags: Mapping[str, str], *,
                 gate_problem: str | None, card: ServedCard, started: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.experiment, self.ledger = cfg, experiment, experiment.ledger
        self.tags, self.gate_problem, self.card = dict(tags), gate_problem, card
        self.clock = clock
        self.started = clock() if started is None else started
        self.ledger_errors = (LedgerUnavailable, *self.ledger.errors)
        self.cache = Cache(cfg.guardrails.check_interval_s, clock)

    async def health(self, loaded: Call) -> JSONResponse:
        """GET /health; `loaded` asks the router which model tags it scores with."""
        try:  # what the router really loaded, not what was configured
            tags = await asyncio.wait_for(loaded(), timeout=HEALTH_TIMEOUT_S)
        except Exception as exc:
            log.warning("health: the router did not say which models it loaded: %s", exc)
            tags = []
        body, status = health_view(self.gate_problem, tags, self.tags,
                                   self.clock() - self.started)
        return JSONResponse(body, status_code=status)

    def _experiment_report(self, fresh: bool) -> dict[str, Any]:
        if fresh:
            return self.experiment.report()[0]
        return self.cache.get("report", lambda: self.experiment.report()[0])

    def ab_stats(self, *, admin: bool, fresh: bool = True) -> Any:
        """GET /ab-stats: the experiment's report, without its internals unless `admin`."""
        try:
            body = self._experiment_report(fresh)
        except self.ledger_errors as exc:
            return ledger_down(self.ledger.where, exc)
        return ab_stats_view(body, admin=admin)

    async def report(self, drift_report: Call, *, admin: bool, fresh: bool = True) -> Any:
        """GET /report: the page of the experiment, its history and the router's drift."""
        if fresh:
            return await self._report_page(drift_report, admin=admin, fresh=True)
        return await self.cache.aget("page", lambda: self._report_page(
            drift_report, admin=False, fresh=False))

    async def _report_page(self, drift_report: Call, *, admin: bool, fresh: bool) -> Response:
        try:
            body, looks = await asyncio.to_thread(self._report_data, fresh)
        except self.ledger_errors as exc:
            return ledger_down(self.ledger.where, exc)
        drift: dict[str, Any] | None
        try:
            drift = await self._drift(drift_report, fresh) or None
        except Exception as exc:  # the page still shows the experiment
            log.exception("report: the drift report failed")
            drift = {"error": f"the router did not answer ({type(exc).__name__})"}
        return HTMLResponse(render(ab_stats_view(body, admin=admin), looks, drift))

    def _report_data(self, fresh: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = self._experiment_report(fresh)
        if fresh:
            return body, self.ledger.looks(self.experiment.id)
        return body, self.cache.get("looks", lambda: self.ledger.looks(self.experiment.id))

    async def _drift(self, drift_report: Call, fresh: bool) -> Any:
        return await (drift_report() if fresh else self.cache.aget("drift", drift_report))

    def experiments(self) -> Any:
        """GET /experiments: every experiment, newest first, and which one is current."""
        try:
            return {"current": self.experiment.id,
                    "experiments": list_experiments(self.cfg, self.ledger)}
        except self.ledger_errors as exc:
            return ledger_down(self.ledger.where, exc)

    def explored(self, limit: int) -> Any:
        """GET /experiments/current/explored: the latest `limit` decisions exploration
        approved, with their propensity (the model's decision and the label, if any)."""
        ex = self.cfg.exploration
        try:
            return {"experiment": self.experiment.id,
                    "exploration": {"enabled": ex.on, "rate": ex.rate,
                                    "max_amount": ex.max_amount,
                                    "daily_budget": ex.daily_budget},
                    "explored": self.ledger.explored(self.experiment.id, limit)}
        except self.ledger_errors as exc:
            return ledger_down(self.ledger.where, exc)

    def disagreements(self, limit: int) -> Any:
        """GET /experiments/current/disagreements: the latest `limit` the models disagreed on."""
        try:
            return {"experiment": self.experiment.id, "shadow": self.cfg.shadow.enabled,
                    "disagreements": self.experiment.disagreements(limit)}
        except self.ledger_errors as exc:
            return ledger_down(self.ledger.where, exc)

    async def drift(self, drift_report: Call, *, fresh: bool = True) -> Any:
        """GET /drift: the router's per-arm drift reports."""
        return drift_view(await self._drift(drift_report, fresh))

    def model_card(self, accept: str | None, *, admin: bool = True) -> Response:
        """GET /model-card, in the format the Accept header prefers; the thresholds only for
        `admin`."""
        return card_response(self.card, accept, admin=admin)

    def feedback(self, request_id: str, is_fraud: bool,
                 source: str | None = None) -> tuple[int, dict[str, Any]]:
        """(status, body) of POST /feedback: the label stored (with its `source`, if given),
        or why not."""
        try:
            outcome = self.ledger.label(request_id, is_fraud, source=source)
        except self.ledger_errors as exc:
            return 503, {"request_id": request_id, **ledger_down_body(
                self.ledger.where, exc, "the label was not stored")}
        status, body = FEEDBACK_ANSWERS[outcome]
        given = {} if source is None else {"source": source}
        return status, {"request_id": request_id, "is_fraud": is_fraud, **given, **body}

    # -- admin: each answers the experiment's shared state after the change -------------------

    def rollback(self) -> Any:
        """POST /admin/rollback: all traffic to the champion."""
        self.experiment.rollback("manual (admin)")
        return self._state()

    def resume(self, *, force: bool) -> Any:
        """POST /admin/resume: 409 when refused (a challenger_worse verdict without force)."""
        refusal = self.experiment.resume_refusal(force)
        if refusal:
            return JSONResponse({"error": refusal}, status_code=409)
        self.experiment.resume(force=force)
        return self._state()

    def share(self, share: float) -> Any:
        """POST /admin/share: a new challenger share of users."""
        self.experiment.set_share(share)
        return self._state()

    def _state(self) -> dict[str, Any]:
        return {"experiment": self.experiment.refresh().to_json()}

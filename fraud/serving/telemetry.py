"""Prometheus metrics with the reference's names.

prometheus_client is imported inside `Metrics()` only: BentoML sets its multiprocess directory
in each worker after the service module is imported, and a client imported earlier would
export one worker's values only (BentoML issue #5056).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fraud.schema import ARMS, Prediction

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
VERDICTS = ("collecting", "no_difference", "challenger_better", "challenger_worse",
            "label_bias")


class Metrics:
    """The service's own metrics; create one per worker, in the service's __init__."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.predictions = pc.Counter(
            "fraud_predictions", "Decisions made, by arm and outcome.",
            ["model_version", "prediction"])
        self.latency = pc.Histogram(
            "fraud_prediction_latency_seconds", "Server-side scoring latency per request.",
            ["model_version"], buckets=LATENCY_BUCKETS)
        self.detection_rate = pc.Gauge(
            "fraud_detection_rate", "Share of the arm's decisions flagged as fraud (ledger).",
            ["model_version"], multiprocess_mode="mostrecent")
        self.errors = pc.Counter(
            "fraud_scoring_errors", "Scoring failures, by arm.", ["model_version"])
        self.rejected = rejections()
        self.rollback = pc.Gauge(
            "fraud_ab_rollback_active", "1 while the challenger is rolled back.",
            multiprocess_mode="mostrecent")
        self.share = pc.Gauge(
            "fraud_ab_challenger_share", "Share of users served by model_b now.",
            multiprocess_mode="mostrecent")
        self.srm_p = pc.Gauge(
            "fraud_ab_srm_p_value", "Sample-ratio-mismatch p-value (current period).",
            multiprocess_mode="mostrecent")
        self.primary_p = pc.Gauge(
            "fraud_ab_primary_p_value", "Always-valid p-value of the primary comparison.",
            multiprocess_mode="mostrecent")
        self.verdict = pc.Gauge(
            "fraud_ab_verdict", "1 for the current sequential verdict.", ["verdict"],
            multiprocess_mode="mostrecent")
        self.ledger_failures = pc.Counter(
            "fraud_ledger_write_failures", "Commits to the ledger that failed (their requests "
            "answered 503).")
        self.ledger_up = pc.Gauge(
            "fraud_ledger_up", "1 while this worker can write the ledger, 0 while it refuses "
            "traffic.", multiprocess_mode="min")
        self.ledger_up.set(1)
        self.explored = pc.Counter(
            "fraud_explored", "Would-be declines approved by exploration, by arm (the model "
            "flagged them; the client was answered is_fraud false).", ["model_version"])
        self.budget_left = pc.Gauge(
            "fraud_exploration_budget_left", "Money today's exploration budget can still "
            "lease (all workers and replicas); absent while exploration is off.",
            multiprocess_mode="mostrecent")
        # Each arm's children, looked up once (labels() takes a lock and builds a key per
        # call); created now, they also export zeros from the start, so absence means a
        # dead service.
        self._counted = {arm: (self.predictions.labels(model_version=arm, prediction="fraud"),
                               self.predictions.labels(model_version=arm, prediction="legit"))
                         for arm in ARMS}
        self._timed = {arm: self.latency.labels(model_version=arm) for arm in ARMS}
        for arm in ARMS:
            self.errors.labels(model_version=arm)
            self.explored.labels(model_version=arm)

    def observe(self, arm: str, flagged: list[bool], seconds: float) -> None:
        """Count decisions of one arm and their latency."""
        fraud, legit = self._counted[arm]
        n_fraud = sum(flagged)
        if n_fraud:
            fraud.inc(n_fraud)
        if len(flagged) - n_fraud:
            legit.inc(len(flagged) - n_fraud)
        self._timed[arm].observe(seconds)

    def observe_predictions(self, results: Sequence[Prediction], seconds: float) -> None:
        """Count one request's decisions per arm, each arm's with the request's latency."""
        for arm in {r.model_version for r in results}:
            self.observe(arm, [r.is_fraud for r in results if r.model_version == arm], seconds)

    def count_errors(self, arms: Sequence[str]) -> None:
        """Scoring failures, one per row, against the row's arm."""
        for arm in ARMS:
            n = sum(1 for a in arms if a == arm)
            if n:
                self.errors.labels(model_version=arm).inc(n)

    def count_explored(self, arm: str, n: int = 1) -> None:
        """Would-be declines of one arm that exploration approved."""
        self.explored.labels(model_version=arm).inc(n)

    def ledger_state(self, up: bool, new_failures: int) -> None:
        """Whether this worker can write the ledger, and its failed commits since the last
        call (fraud.experiment.watch.Watch reports both every second)."""
        self.ledger_up.set(1 if up else 0)
        self.ledger_failures.inc(new_failures)

    def publish(self, report: dict[str, Any]) -> None:
        """Set the experiment gauges from an /ab-stats report."""
        for arm in ARMS:
            self.detection_rate.labels(model_version=arm).set(report[arm]["fraud_rate"])
        exp = report["experiment"]
        self.rollback.set(1 if exp["rolled_back"] else 0)
        self.share.set(exp["effective_share"])
        srm = report.get("sample_ratio")
        self.srm_p.set(srm["p_value"] if srm and srm.get("p_value") is not None else 1.0)
        p = report["primary"].get("p_value")
        self.primary_p.set(1.0 if p is None else p)
        for v in VERDICTS:
            self.verdict.labels(verdict=v).set(1 if report["primary"]["verdict"] == v else 0)
        today = (report.get("exploration") or {}).get("today")
        if today and today.get("budget_left") is not None:
            self.budget_left.set(today["budget_left"])


REJECTION_REASONS = ("unauthenticated", "forbidden", "rate_limited", "too_large")
_rejected: Any = None


def rejections() -> Any:
    """The counter `fraud_rejected_requests{route,reason}`, created on first use in this worker
    (the security middleware counts before, and apart from, the service's Metrics)."""
    global _rejected
    if _rejected is None:
        import prometheus_client as pc

        _rejected = pc.Counter(
            "fraud_rejected_requests", "Requests refused before the route ran: no or an "
            "unknown key (401), a key without the scope (403), over the key's rate (429), "
            "a body over the limit (413).", ["route", "reason"])
    return _rejected


def count_rejection(route: str, reason: str) -> None:
    """One refusal; `route` must come from a bounded set (the caller maps unknown paths)."""
    rejections().labels(route=route, reason=reason).inc()


class RouterMetrics:
    """Batch sizes formed by the router's adaptive batching."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.batch = pc.Histogram("fraud_router_batch_size",
                                  "Rows per call scored by the A/B router.",
                                  buckets=BATCH_BUCKETS)
        self.drift_psi = pc.Gauge(
            "fraud_feature_drift_psi",
            "PSI of each feature's live window against the arm model's training data.",
            ["feature", "model_version"], multiprocess_mode="mostrecent")
        self.drift = pc.Gauge(
            "fraud_feature_drift",
            "1 when GET /drift judges the feature drifting on that arm, else 0.",
            ["feature", "model_version"], multiprocess_mode="mostrecent")

    def observe(self, rows: int) -> None:
        self.batch.observe(rows)

    def publish_drift(self, arm: str, report: dict[str, Any]) -> None:
        """Set the drift gauges of one arm; nothing before the window holds min_rows."""
        if not report["ready"]:
            return
        for feature, f in report["features"].items():
            self.drift_psi.labels(feature=feature, model_version=arm).set(f["psi"])
            self.drift.labels(feature=feature, model_version=arm).set(1 if f["drift"] else 0)

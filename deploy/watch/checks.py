"""What one poll measures: the NEW pods' HTTP 5xx share and p95 latency (beside the old pods'
while both run), their traffic, and the alert rules we ship, scoped to the new pods.

Series come from BentoML's own request metrics on the API service (checked against a real
serve: `bentoml_service_request_total` and `bentoml_service_request_duration_seconds`, labels
endpoint, http_response_code, runner_name, service_name, service_version) and from the
service's fraud_* metrics. The pods are told apart by a label the scrape adds: with the
PodMonitor in deploy/k8s, `pod_template_hash` (a Deployment's ReplicaSet) or
`rollouts_pod_template_hash` (Argo Rollouts), copied from the pods by podTargetLabels.

Each check answers one of four states:
  ok            measured, within its limit
  fail          measured on the new pods, over its limit, and (when the old pods have traffic)
                worse than the old pods by the margin: the release's fault
  inconclusive  too little traffic on the new pods to say, or the old pods are as bad (the
                environment is broken, not the release)
  error         Prometheus did not answer
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.watch.prometheus import PrometheusError
from deploy.watch.rules import Check as RuleCheck
from deploy.watch.rules import scope

OK, FAIL, INCONCLUSIVE, ERROR = "ok", "fail", "inconclusive", "error"
# The API service's routes that serve clients; probes, /metrics and the router's internal
# calls are not the release's traffic (a not-ready pod answers its /readyz probe with 503).
SCORED = 'runner_name="FraudDetection", endpoint!~"/(readyz|livez|healthz|metrics)"'
REQUESTS = "bentoml_service_request_total"
DURATION = "bentoml_service_request_duration_seconds_bucket"
Query = Callable[[str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Limits:
    """Thresholds, in the units Flagger and Argo Rollouts analyses use."""

    max_5xx: float = 0.05        # share of answers that are 5xx
    max_p95_s: float = 0.25      # p95 of POST /predict, seconds
    min_requests: float = 20     # requests the new pods must have served in the window
    margin_5xx: float = 0.02     # new share must exceed old share by this to be the release's
    p95_factor: float = 1.5      # new p95 must exceed old p95 times this
    window: str = "1m"           # rate window (new pods only exist since they started)


@dataclass
class Outcome:
    name: str
    state: str
    new: float | None = None
    old: float | None = None
    detail: str = ""

    def line(self) -> str:
        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.4g}"
        return f"{self.name}: {self.state} (new {fmt(self.new)}, old {fmt(self.old)}) {self.detail}"


@dataclass
class Selection:
    """Label matchers for the new pods and (optionally) the old ones, plus the namespace."""

    new: str
    old: str | None = None
    namespace: str | None = None

    def matcher(self, which: str) -> str:
        pods = self.new if which == "new" else self.old
        assert pods is not None
        ns = f'namespace="{self.namespace}"' if self.namespace else ""
        return ", ".join(m for m in (ns, pods) if m)


def scalar(series: list[dict[str, Any]]) -> float | None:
    """The one value of a (summed) instant vector; None when empty or not a number."""
    if not series:
        return None
    value = float(series[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


def requests_expr(m: str, window: str) -> str:
    return f"sum(increase({REQUESTS}{{{m}, {SCORED}}}[{window}]))"


def share_5xx_expr(m: str, window: str) -> str:
    return (f'sum(rate({REQUESTS}{{{m}, {SCORED}, http_response_code=~"5.."}}[{window}]))'
            f" / sum(rate({REQUESTS}{{{m}, {SCORED}}}[{window}]))")


def p95_expr(m: str, window: str) -> str:
    return (f"histogram_quantile(0.95, sum by (le) (rate({DURATION}{{{m}, "
            f'runner_name="FraudDetection", endpoint="/predict"}}[{window}])))')


@dataclass
class Measure:
    """Evaluates the checks of one poll."""

    selection: Selection
    limits: Limits = field(default_factory=Limits)
    rules: list[RuleCheck] = field(default_factory=list)
    exempt: set[str] = field(default_factory=set)   # rules already firing before the deploy

    def scoped_rules(self) -> list[RuleCheck]:
        m = self.selection.matcher("new")
        return [RuleCheck(r.name, scope(r.expr, m), r.hold_s) for r in self.rules]

    def poll(self, query: Query) -> list[Outcome]:
        """All checks once. Prometheus errors become `error` outcomes, never exceptions."""
        lim, sel = self.limits, self.selection
        out: list[Outcome] = []
        try:
            served = scalar(query(requests_expr(sel.matcher("new"), lim.window))) or 0.0
            old_served = (scalar(query(requests_expr(sel.matcher("old"), lim.window))) or 0.0
                          if sel.old else 0.0)
        except PrometheusError as exc:
            return [Outcome("traffic", ERROR, detail=str(exc))]
        quiet = served < lim.min_requests
        out.append(Outcome("traffic", INCONCLUSIVE if quiet else OK, served, old_served,
                           f"requests in {lim.window} (at least {lim.min_requests:g} needed)"))
        compare = sel.old is not None and old_served >= lim.min_requests
        out.append(self._ratio(query, quiet, compare))
        out.append(self._latency(query, quiet, compare))
        for rule in self.scoped_rules():
            out.append(self._rule(query, rule))
        return out

    def _values(self, query: Query, expr: Callable[[str, str], str], compare: bool,
                ) -> tuple[float | None, float | None]:
        sel, window = self.selection, self.limits.window
        new = scalar(query(expr(sel.matcher("new"), window)))
        old = scalar(query(expr(sel.matcher("old"), window))) if compare else None
        return new, old

    def _ratio(self, query: Query, quiet: bool, compare: bool) -> Outcome:
        name, lim = "http_5xx_share", self.limits
        try:
            new, old = self._values(query, share_5xx_expr, compare)
        except PrometheusError as exc:
            return Outcome(name, ERROR, detail=str(exc))
        if quiet or new is None:
            return Outcome(name, INCONCLUSIVE, new, old, "too little traffic")
        if new <= lim.max_5xx:
            return Outcome(name, OK, new, old, f"<= {lim.max_5xx:g}")
        if compare and old is not None and new <= old + lim.margin_5xx:
            return Outcome(name, INCONCLUSIVE, new, old, "the old pods fail as much")
        return Outcome(name, FAIL, new, old, f"> {lim.max_5xx:g}")

    def _latency(self, query: Query, quiet: bool, compare: bool) -> Outcome:
        name, lim = "predict_p95_seconds", self.limits
        try:
            new, old = self._values(query, p95_expr, compare)
        except PrometheusError as exc:
            return Outcome(name, ERROR, detail=str(exc))
        if quiet or new is None:
            return Outcome(name, INCONCLUSIVE, new, old, "too little /predict traffic")
        if new <= lim.max_p95_s:
            return Outcome(name, OK, new, old, f"<= {lim.max_p95_s:g}s")
        if compare and old is not None and new <= old * lim.p95_factor:
            return Outcome(name, INCONCLUSIVE, new, old, "the old pods are as slow")
        return Outcome(name, FAIL, new, old, f"> {lim.max_p95_s:g}s")

    def _rule(self, query: Query, rule: RuleCheck) -> Outcome:
        try:
            series = query(rule.expr)
        except PrometheusError as exc:
            return Outcome(rule.name, ERROR, detail=str(exc))
        if not series:
            return Outcome(rule.name, OK, detail="not firing")
        value = scalar(series)
        if rule.name in self.exempt:
            return Outcome(rule.name, OK, value, detail="firing since before the deploy: "
                           "not this release's doing")
        return Outcome(rule.name, FAIL, value, detail="firing on the new pods")


def poll_state(outcomes: list[Outcome]) -> str:
    """One poll's verdict: any fail fails it; else any error or inconclusive makes it that."""
    states = {o.state for o in outcomes}
    for state in (FAIL, ERROR, INCONCLUSIVE):
        if state in states:
            return state
    return OK

"""The operations routes' answers, as pure functions of what the service knows.

GET /health: status, models and uptime (`health_view`). GET /drift: both arms' reports or why
there are none (`drift_view`). GET /model-card: markdown or JSON by the Accept header
(`card_response`). GET /ab-stats, what it shows to whom (`ab_stats_view`):

The salt lets anyone compute any user's arm, the thresholds show where the decision edge
is, and exploration's rate, amount cap and spending show which declines may be let through:
all are internals: an `admin` key (or open mode) sees the whole report, every other
caller the same report without them. Everything else (counts, rates, intervals, verdicts)
stays public: the reference's `/ab-stats` clients read it without a key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse, Response

from fraud.api.errors import error_body, without_paths
from fraud.api.responses import DriftResponse
from fraud.schema import ARMS
from fraud.serving.card import ServedCard

# (path to a mapping, key): removed from the public view when present.
INTERNALS: tuple[tuple[tuple[str, ...], str], ...] = (
    *((((arm,), "threshold")) for arm in ARMS),
    (("experiment",), "salt"),
    (("paired", "same_flag_rate"), "threshold_a"),
    (("paired", "same_flag_rate"), "threshold_b"),
    # Exploration's rate, cap and spending would tell a fraudster which amounts may get
    # through, and when: admin only.
    (("exploration",), "rate"),
    (("exploration",), "max_amount"),
    (("exploration",), "daily_budget"),
    (("exploration",), "today"),
)


def ab_stats_view(report: dict[str, Any], *, admin: bool) -> dict[str, Any]:
    """The /ab-stats body for this caller: all of `report` for admin, else a copy without the
    INTERNALS (the report itself is never changed)."""
    if admin:
        return report
    out = copy.deepcopy(report)
    for path, key in INTERNALS:
        node: Any = out
        for step in path:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key, None)
    return out


def wants_json(accept: str | None) -> bool:
    """True when the Accept header prefers application/json to text/markdown (the default)."""
    best = {"application/json": 0.0, "text/markdown": 0.0}
    specificity = {k: -1 for k in best}
    for part in (accept or "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for target in best:
            kind = target.split("/")[0]
            level = {target: 2, f"{kind}/*": 1, "*/*": 0}.get(media.lower(), -1)
            if level > specificity[target]:
                specificity[target], best[target] = level, q
    return best["application/json"] > best["text/markdown"]


def health_view(gate_problem: str | None, loaded: Sequence[str], models: Mapping[str, str],
                uptime_s: float) -> tuple[dict[str, Any], int]:
    """(body, status) of GET /health: 200 "healthy" once the models passed the gate, else 503
    "not_ready" with the `reason`; `models_loaded` says whether the router really loaded
    `models` (arm -> tag; `loaded` is what it says it scores with, [] if it did not answer)."""
    body: dict[str, Any] = {
        "status": "healthy" if gate_problem is None else "not_ready",
        "models_loaded": sorted(loaded) == sorted(models.values()),
        "models": dict(models),
        "uptime_seconds": round(uptime_s, 1),
    }
    if gate_problem:
        body["reason"] = without_paths(gate_problem)  # the log has it whole
    return body, 200 if gate_problem is None else 503


def drift_view(arms: Mapping[str, Any] | None) -> Any:
    """GET /drift: the router's per-arm reports, or 503 when no model carries a reference."""
    if not arms:
        return JSONResponse({"error": "no model carries a drift reference: retrain "
                                      "(make train)"}, status_code=503)
    return DriftResponse(arms=arms).model_dump()  # type: ignore[arg-type]


def card_response(served: ServedCard, accept: str | None, *, admin: bool = True) -> Response:
    """GET /model-card: markdown unless the Accept header prefers JSON; 503 without a card.
    Without an admin key the thresholds are left out (fraud/model_card.py `public`)."""
    if served.card is None:
        return JSONResponse(error_body(f"no model card: {without_paths(str(served.problem))}"),
                            status_code=503)
    headers = {"X-Model-Card-Source": served.source, "Vary": "Accept, Authorization"}
    if wants_json(accept):
        return JSONResponse(served.as_json(admin=admin), headers=headers)
    text = served.markdown if admin else served.public_markdown
    return Response(text, media_type="text/markdown; charset=utf-8", headers=headers)

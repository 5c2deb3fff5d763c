"""The published contract's words: what each route can answer beyond the generic statuses,
and the Swagger page's description. Plain data, read by fraud/openapi.py's patch (wired in
service.py); a route's statuses live here so the schema and the handlers stay side by side in
review.
"""

from __future__ import annotations

from typing import Any

import yaml

from fraud.config import PROJECT_ROOT

LEDGER_DOWN = "The ledger is unavailable or the service is not ready; nothing was stored."
# Statuses only the routes know; each is documented with the error body unless given in full.
ROUTE_STATUSES: dict[str, dict[int, Any]] = {
    "POST /predict": {503: LEDGER_DOWN},
    "POST /predict_batch": {503: LEDGER_DOWN},
    "POST /explain": {501: "The arm's model is not a tree ensemble: no exact explanation.",
                      503: "The service is not ready: its models did not pass the gate."},
    "GET /drift": {503: "No model carries a drift reference (trained before references were "
                        "stored): retrain."},
    "POST /feedback": {404: "request_id is unknown: no such decision.",
                       409: "request_id already has the opposite label; labels are final.",
                       503: LEDGER_DOWN},
    "GET /health": {503: {"description": "Not ready: `reason` says why (same body as the 200).",
                          "content": {"application/json": {"schema": {"type": "object"}}}}},
    "GET /ab-stats": {503: LEDGER_DOWN},
    "GET /report": {503: LEDGER_DOWN},
    "GET /experiments": {503: LEDGER_DOWN},
    "GET /experiments/current/disagreements": {503: LEDGER_DOWN},
    "GET /model-card": {
        200: {"description": "The card: Markdown by default, JSON with `Accept: "
                             "application/json`. `X-Model-Card-Source` (and the JSON's `source`) "
                             "says where it came from: `build` (made by `make build`, bundled) "
                             "or `startup` (made from the served models' metadata and the gate "
                             "report when no card for them was bundled).",
              "headers": {"X-Model-Card-Source": {"schema": {"type": "string",
                                                             "enum": ["build", "startup"]}}},
              "content": {"text/markdown": {"schema": {"type": "string"}},
                          "application/json": {"schema": {"type": "object"}}}},
        503: "The card could not be made (the models' metadata is unreadable): `error` says why."},
    "POST /admin/resume": {409: "Refused: the final verdict is challenger_worse (use "
                                "?force=true)."},
}


def route_paths(routes: Any) -> set[str]:
    """Every path in a route list, through included routers (FastAPI 0.165 keeps the class
    views BentoML re-includes behind one router object)."""
    out: set[str] = set()
    for route in routes:
        if getattr(route, "path", None):
            out.add(route.path)
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        out |= route_paths(inner or ())
    return out


def swagger_description() -> str | None:
    """bentofile.yaml's description, for `bentoml serve` from source (BentoML shows its own
    boilerplate there; a built bento's README is this description already)."""
    bentofile = PROJECT_ROOT / "bentofile.yaml"
    if not bentofile.exists():
        return None
    return (yaml.safe_load(bentofile.read_text()) or {}).get("description")

"""The published contract's words: what each route can answer beyond the generic statuses,
and the Swagger page's description. Plain data, read by fraud/api/openapi.py's patch (wired in
service.py); a route's statuses live here so the schema and the handlers stay side by side in
review.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from fraud.api.auth import EXACT_ROUTES, Access, Rule, rule_for
from fraud.api.errors import ErrorBody
from fraud.api.ratelimit import RatePolicy
from fraud.api.settings import LimitSettings
from fraud.api.swaggerinfo import brand, project_info
from fraud.config import PROJECT_ROOT

LEDGER_DOWN = ("The ledger is unavailable or the service is not ready; nothing was stored. "
               "`error` names a stable code (LEDGER_UNAVAILABLE, OVERLOADED), never the "
               "store's address or the driver's words.")
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
    "GET /experiments/current/explored": {503: LEDGER_DOWN},
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


def known_routes(app: Any, *services: Any) -> frozenset[str]:
    """Every path the service answers: its ASGI app's routes, its BentoML services' API
    routes, and BentoML's own (/readyz, /metrics, the Swagger UI: the route table's)."""
    apis = {api.route for service in services for api in service.apis.values()}
    return frozenset(route_paths(app.routes) | apis | set(EXACT_ROUTES))


def swagger_description() -> str | None:
    """bentofile.yaml's description, for `bentoml serve` from source (BentoML shows its own
    boilerplate there; a built bento's README is this description already)."""
    bentofile = PROJECT_ROOT / "bentofile.yaml"
    if not bentofile.exists():
        return None
    return (yaml.safe_load(bentofile.read_text()) or {}).get("description")



SCHEME = "bearerAuth"
REF = "#/components/schemas/{model}"
ERROR_REF = {"$ref": REF.format(model="ErrorBody")}
METHODS = ("get", "put", "post", "delete", "patch")
# "POST /feedback" -> {404: "why"}; a status whose body is not the error body: a response dict
Statuses = Mapping[str, Mapping[int, str | Mapping[str, Any]]]


def _error(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": ERROR_REF}}}
    if headers:
        out["headers"] = dict(headers)
    return out


def _components(doc: dict[str, Any]) -> None:
    comps = doc.setdefault("components", {})
    schema = ErrorBody.model_json_schema(ref_template=REF)
    schemas = comps.setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["ErrorBody"] = schema
    comps.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "An API key from FRAUDSERVE_API_KEYS, sent as 'Authorization: Bearer "
                       "<key>'. Scopes: score (scoring), label (/feedback), admin."}


def _responses(op: dict[str, Any], path: str, *, keys_on: bool,
               limits: LimitSettings, rate: RatePolicy, rule: Rule,
               own: Mapping[int, str | Mapping[str, Any]]) -> None:
    responses = {str(k): v for k, v in op.get("responses", {}).items()}  # asdict() has ints
    op["responses"] = responses
    bentoml_api = "x-bentoml-name" in op
    responses.pop("422", None)  # FastAPI's; fraud.api.errors answers validation errors with 400
    if bentoml_api:  # BentoML lists 404 and 500 on every API; keep the ones that happen
        responses.pop("404", None)
    if "requestBody" in op or op.get("parameters"):
        responses["400"] = _error("The body or a parameter breaks a rule: `error` says how "
                                  "many, `detail` names each field (`loc`) and its rule "
                                  "(`msg`).")
    if "requestBody" in op:
        op["requestBody"]["required"] = True  # every body route needs one (no body: 400)
        limit = limits.body_limit(path)
        responses["415"] = _error("The body is not JSON (`Content-Type` must be "
                                  "application/json).")
        responses["413"] = _error(f"The body is larger than {limit} bytes (refused before "
                                  "it is parsed).")
    if keys_on and rule.access is not Access.OPEN:
        responses["401"] = _error(
            "No API key, or an unknown one.",
            {"WWW-Authenticate": {"schema": {"type": "string"},
                                  "description": 'Bearer realm="fraudserve"'}})
    if keys_on and rule.access is Access.SCOPED:
        responses["403"] = _error(f"The key lacks the '{rule.scope}' scope.")
    limited = []
    if rate.key.enabled:
        limited.append(f"{rate.key.per_min:g} requests per minute for a key")
    if rate.anonymous.enabled and rule.access is not Access.SCOPED:
        limited.append(f"{rate.anonymous.per_min:g} per minute per client address without "
                       "a key")
    if rate.failed_auth.enabled:
        limited.append(f"{rate.failed_auth.per_min:g} failed authentications per minute per "
                       "client address")
    if keys_on and limited:
        responses["429"] = _error(
            f"Over a rate limit: {'; '.join(limited)}.",
            {"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                             "description": "Seconds to wait before retrying."}})
    for status, why in own.items():  # words: the error body; a dict: the response as is
        responses[str(status)] = dict(why) if isinstance(why, Mapping) else _error(why)
    for status in ("400", "500", "503"):  # BentoML's own error schemas: the real body
        if status in responses:
            responses[status].setdefault("content", {})["application/json"] = {
                "schema": ERROR_REF}


def _security(op: dict[str, Any], *, keys_on: bool, rule: Rule) -> None:
    if rule.access is Access.KEYED:
        words = "**Needs a key** (any scope; `access.reports_need_key`)."
        if keys_on:
            op["security"] = [{SCHEME: []}]
    elif rule.access is Access.SCOPED:
        words = f"**Scope: `{rule.scope}`** (Authorization: Bearer <key>)."
        if keys_on:
            op["security"] = [{SCHEME: [rule.scope]}]
        else:
            words += " Keys are off on this server: no key is needed."
    elif rule.access is Access.VIEW:
        words = "Open; with an `admin` key the answer also shows the experiment's internals."
        if keys_on:
            op["security"] = [{}, {SCHEME: ["admin"]}]
    else:
        words = "Open: no key needed."
        op["security"] = []
    text = op.get("description") or op.get("summary") or ""
    op["description"] = f"{text}\n\n{words}".strip()


def patch_openapi(doc: Mapping[str, Any], *, keys_on: bool, limits: LimitSettings,
                  rate: RatePolicy, statuses: Statuses | None = None,
                  reports_need_key: bool = False) -> dict[str, Any]:
    """A copy of BentoML's document with the security and error contract filled in.

    `statuses` adds what only the route knows, e.g. {"POST /feedback": {404: "...", 409:
    "..."}}; each is documented with the error body.
    """
    out = copy.deepcopy(dict(doc))
    out["openapi"] = "3.1.0"
    _components(out)
    for path, item in out.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            own = (statuses or {}).get(f"{method.upper()} {path}", {})
            rule = rule_for(path, reports_need_key=reports_need_key)
            _responses(op, path, keys_on=keys_on, limits=limits, rate=rate, rule=rule, own=own)
            _security(op, keys_on=keys_on, rule=rule)
    return out


def published(*, keys_on: bool, limits: LimitSettings, rate: RatePolicy,
              description: str | None = None, reports_need_key: bool = False,
              info: Mapping[str, Any] | None = None) -> Callable[[dict], dict]:
    """OpenAPIMiddleware's `patch` for the service: patch_openapi with the routes' own
    statuses (ROUTE_STATUSES), `description` (bentofile.yaml's) as the Swagger text, and the
    project's version, contact, licence and summaries (fraud/api/swaggerinfo.py; `info`
    defaults to pyproject.toml's)."""
    ours = project_info() if info is None else info

    def patch(doc: dict[str, Any]) -> dict[str, Any]:
        out = patch_openapi(brand(doc, ours), keys_on=keys_on, limits=limits, rate=rate,
                            statuses=ROUTE_STATUSES, reports_need_key=reports_need_key)
        if description:
            out.setdefault("info", {})["description"] = description
        return out

    return patch


class OpenAPIMiddleware:
    """Rewrites the JSON answer of GET `path` (BentoML's /docs.json) with `patch`."""

    def __init__(self, app: Callable[..., Any], *, patch: Callable[[dict], dict],
                 path: str = "/docs.json") -> None:
        self.app, self.patch, self.path = app, patch, path

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any],
                       send: Callable[[dict[str, Any]], Any]) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(self.patch(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

"""The published OpenAPI document, made honest: keys, scopes and every status with its body.

BentoML builds /docs.json from its APIs and the mounted FastAPI app (its own classes cannot
carry `securitySchemes` or `security`), so `OpenAPIMiddleware` rewrites the answer with
`patch_openapi`: the bearer scheme and each operation's scope, the 400/401/403/413/429 (and
the routes' own statuses) with the one error body of fraud/errors.py in place of BentoML's
`detail: string` and FastAPI's 422, and OpenAPI 3.1, the dialect pydantic's schemas are in
(`exclusiveMinimum: 0` is a number there, `{"type": "null"}` is allowed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from fraud.auth import Access, rule_for
from fraud.errors import ErrorBody
from fraud.middleware import LimitSettings
from fraud.ratelimit import RateSettings

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
               limits: LimitSettings, rate: RateSettings,
               own: Mapping[int, str | Mapping[str, Any]]) -> None:
    responses = {str(k): v for k, v in op.get("responses", {}).items()}  # asdict() has ints
    op["responses"] = responses
    bentoml_api = "x-bentoml-name" in op
    responses.pop("422", None)  # FastAPI's; fraud.errors answers validation errors with 400
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
    rule = rule_for(path)
    if keys_on and rule.access is not Access.OPEN:
        responses["401"] = _error(
            "No API key, or an unknown one.",
            {"WWW-Authenticate": {"schema": {"type": "string"},
                                  "description": 'Bearer realm="fraudserve"'}})
    if keys_on and rule.access is Access.SCOPED:
        responses["403"] = _error(f"The key lacks the '{rule.scope}' scope.")
        if rate.enabled:
            responses["429"] = _error(
                f"More than {rate.per_min:g} requests per minute for this key.",
                {"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                 "description": "Seconds to wait before retrying."}})
    for status, why in own.items():  # words: the error body; a dict: the response as is
        responses[str(status)] = dict(why) if isinstance(why, Mapping) else _error(why)
    for status in ("400", "500", "503"):  # BentoML's own error schemas: the real body
        if status in responses:
            responses[status].setdefault("content", {})["application/json"] = {
                "schema": ERROR_REF}


def _security(op: dict[str, Any], path: str, *, keys_on: bool) -> None:
    rule = rule_for(path)
    if rule.access is Access.SCOPED:
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
                  rate: RateSettings, statuses: Statuses | None = None) -> dict[str, Any]:
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
            _responses(op, path, keys_on=keys_on, limits=limits, rate=rate, own=own)
            _security(op, path, keys_on=keys_on)
    return out


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

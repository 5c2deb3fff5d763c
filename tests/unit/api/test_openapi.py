"""patch_openapi on the document BentoML really builds (a toy service shaped like ours)."""

from __future__ import annotations

import json
from typing import Any

import bentoml
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fraud.api.openapi import (
    ROUTE_STATUSES,
    OpenAPIMiddleware,
    known_routes,
    patch_openapi,
    published,
)
from fraud.api.ratelimit import RatePolicy, RateSettings
from fraud.api.settings import LimitSettings
from fraud.schema import Feedback, Prediction, ShareChange, Transaction

ops = FastAPI()


@ops.get("/health")
def health() -> dict[str, str]:
    return {"status": "healthy"}


@ops.get("/ab-stats")
def ab_stats() -> dict[str, str]:
    return {}


@ops.post("/admin/share")
def share(change: ShareChange, force: bool = False) -> dict[str, float]:
    return {"share": change.challenger_share}


@bentoml.service
@bentoml.asgi_app(ops, path="/")
class Toy:
    @bentoml.api(route="/predict", input_spec=Transaction)
    def predict(self, **fields: Any) -> Prediction:
        raise NotImplementedError

    @bentoml.api(route="/feedback", input_spec=Feedback)
    def feedback(self, request_id: str, is_fraud: bool) -> dict[str, Any]:
        raise NotImplementedError


LIMITS = LimitSettings(max_body_bytes=65536, max_batch_body_bytes=2_048_000)
RATE = RatePolicy(key=RateSettings(per_min=600))
NOT_READY = {"description": "Not ready.", "content": {"application/json": {
    "schema": {"type": "object"}}}}
STATUSES = {"POST /feedback": {404: "Unknown request_id.", 409: "Opposite label."},
            "GET /health": {503: NOT_READY}}


@pytest.fixture(scope="module")
def bentoml_doc() -> dict[str, Any]:
    return json.loads(json.dumps(Toy.openapi_spec.asdict()))  # as /docs.json sends it


@pytest.fixture(scope="module")
def doc(bentoml_doc: dict[str, Any]) -> dict[str, Any]:
    return patch_openapi(bentoml_doc, keys_on=True, limits=LIMITS, rate=RATE,
                         statuses=STATUSES)


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_what_bentoml_publishes_is_what_we_patch(bentoml_doc: dict[str, Any]) -> None:
    """Pins the BentoML shapes the patch relies on (if this fails, BentoML changed)."""
    predict = bentoml_doc["paths"]["/predict"]["post"]
    assert {"400", "404", "500"} <= set(predict["responses"]) and "x-bentoml-name" in predict
    assert "422" in bentoml_doc["paths"]["/admin/share"]["post"]["responses"]
    assert "securitySchemes" not in bentoml_doc["components"]


def test_bearer_scheme_and_each_operations_scope(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"][
            "securitySchemes"]["bearerAuth"]["description"]}
    expected = {("/predict", "post"): [{"bearerAuth": ["score"]}],
                ("/feedback", "post"): [{"bearerAuth": ["label"]}],
                ("/admin/share", "post"): [{"bearerAuth": ["admin"]}],
                ("/ab-stats", "get"): [{}, {"bearerAuth": ["admin"]}],
                ("/health", "get"): [], ("/metrics", "get"): []}
    for (path, method), security in expected.items():
        op = doc["paths"][path][method]
        assert op["security"] == security, path
    assert "**Scope: `score`**" in doc["paths"]["/predict"]["post"]["description"]


def test_every_error_status_with_the_real_body(doc: dict[str, Any]) -> None:
    want = {
        ("/predict", "post"): {"200", "400", "401", "403", "413", "415", "429", "500"},
        ("/feedback", "post"): {"200", "400", "401", "403", "404", "409", "413", "415",
                                "429", "500"},
        ("/admin/share", "post"): {"200", "400", "401", "403", "413", "415", "429"},
        ("/ab-stats", "get"): {"200", "401", "429"},
        ("/health", "get"): {"200", "429", "503"},  # 429: per client address, without a key
    }
    for (path, method), statuses in want.items():
        op = doc["paths"][path][method]
        if "requestBody" in op:
            assert op["requestBody"]["required"] is True, path
        responses = op["responses"]
        assert set(responses) == statuses, (path, sorted(responses))
        for status in statuses - {"200"} - ({"503"} if path == "/health" else set()):
            schema = responses[status]["content"]["application/json"]["schema"]
            body = resolve(doc, schema)
            assert body["required"] == ["error"], (path, status)
            assert body["properties"]["detail"]["anyOf"][0]["type"] == "array"
    predict = doc["paths"]["/predict"]["post"]["responses"]
    assert "65536 bytes" in predict["413"]["description"]
    assert predict["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert "WWW-Authenticate" in predict["401"]["headers"]
    assert doc["paths"]["/health"]["get"]["responses"]["503"] == NOT_READY


def test_the_rules_are_in_the_request_schema(doc: dict[str, Any]) -> None:
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    props = resolve(doc, body["schema"])["properties"]
    assert props["amount"]["exclusiveMinimum"] == 0
    assert (props["hour"]["type"], props["hour"]["minimum"], props["hour"]["maximum"]) == (
        "integer", 0, 23)
    feedback = doc["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert resolve(doc, feedback["schema"])["properties"]["is_fraud"]["type"] == "boolean"


def test_open_mode_documents_no_key(bentoml_doc: dict[str, Any]) -> None:
    doc = patch_openapi(bentoml_doc, keys_on=False, limits=LIMITS, rate=RATE)
    op = doc["paths"]["/predict"]["post"]
    assert "security" not in op and not {"401", "403", "429"} & set(op["responses"])
    assert "no key is needed" in op["description"]
    assert {"400", "413"} <= set(op["responses"])


def test_the_input_document_is_not_modified(bentoml_doc: dict[str, Any]) -> None:
    before = json.dumps(bentoml_doc, sort_keys=True)
    patch_openapi(bentoml_doc, keys_on=True, limits=LIMITS, rate=RATE)
    assert json.dumps(bentoml_doc, sort_keys=True) == before


def test_the_middleware_rewrites_only_the_document() -> None:
    async def docs(_: Any) -> JSONResponse:
        return JSONResponse({"openapi": "3.0.2", "paths": {}})

    async def other(_: Any) -> JSONResponse:
        return JSONResponse({"openapi": "untouched"})

    app = Starlette(routes=[Route("/docs.json", docs), Route("/other", other)], middleware=[
        Middleware(OpenAPIMiddleware, patch=lambda d: {**d, "patched": True})])
    client = TestClient(app)
    answer = client.get("/docs.json")
    assert answer.json() == {"openapi": "3.0.2", "paths": {}, "patched": True}
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert client.get("/other").json() == {"openapi": "untouched"}
    assert client.post("/docs.json").status_code == 405  # only GET is rewritten


def test_the_known_routes_are_the_apps_and_the_apis() -> None:
    routes = known_routes(ops, Toy)
    assert {"/health", "/ab-stats", "/admin/share", "/predict", "/feedback"} <= routes
    assert "/wp-login.php" not in routes


def test_the_published_patch_adds_the_routes_statuses_and_the_description(
        bentoml_doc: dict[str, Any]) -> None:
    patch = published(keys_on=False, limits=LIMITS, rate=RATE, description="# fraudserve")
    doc = patch(bentoml_doc)
    assert doc == {**patch_openapi(bentoml_doc, keys_on=False, limits=LIMITS, rate=RATE,
                                   statuses=ROUTE_STATUSES),
                   "info": {**bentoml_doc["info"], "description": "# fraudserve"}}
    assert "404" in doc["paths"]["/feedback"]["post"]["responses"]  # a route's own status
    plain = published(keys_on=False, limits=LIMITS, rate=RATE)(bentoml_doc)
    assert plain["info"] == bentoml_doc["info"]  # no description: BentoML's stays

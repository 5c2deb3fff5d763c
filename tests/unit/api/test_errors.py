"""The one error shape: FastAPI's validation errors answered like BentoML's 400s."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.testclient import TestClient

from fraud.api.errors import (
    ErrorBody,
    clean_detail,
    fastapi_validation_handler,
    validation_body,
)
from fraud.schema import EXAMPLE_TRANSACTION, ShareChange, Transaction

app = FastAPI()
app.add_exception_handler(RequestValidationError, fastapi_validation_handler)


@app.post("/admin/share")
def share(change: ShareChange, force: bool = False) -> dict[str, float]:
    return {"share": change.challenger_share}


@pytest.mark.parametrize(("body", "loc"), [
    ('{"challenger_share": false}', ["body", "challenger_share"]),
    ('{"challenger_share": 1.5}', ["body", "challenger_share"]),
    ("{}", ["body", "challenger_share"]),
    ('{"challenger_share": ', ["body", 21]),  # json_invalid at offset 21
])
def test_fastapi_validation_errors_are_400s_in_the_one_shape(body: str, loc: list) -> None:
    answer = TestClient(app).post("/admin/share", content=body,
                                  headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    parsed = ErrorBody.model_validate(answer.json())
    assert parsed.error == "1 validation error for POST /admin/share"
    assert [d.loc for d in parsed.detail or []] == [loc]
    assert set(answer.json()["detail"][0]) == {"loc", "msg", "type"}  # no input echoed


def test_a_bad_query_parameter_is_a_400_too() -> None:
    answer = TestClient(app).post("/admin/share?force=maybe", json={"challenger_share": 0.1})
    assert answer.status_code == 400
    assert ErrorBody.model_validate(answer.json()).detail[0].loc == ["query", "force"]


def test_bentoml_400_bodies_fit_the_documented_shape() -> None:
    """What BentoML's api_endpoint_wrapper sends for a ValidationError."""
    with pytest.raises(ValidationError) as err:
        Transaction.model_validate_json(json.dumps({**EXAMPLE_TRANSACTION, "amount": -1}))
    exc = err.value
    sent = {"error": f"{exc.error_count()} validation error for {exc.title}",
            "detail": exc.errors(include_context=False, include_input=False)}
    parsed = ErrorBody.model_validate(json.loads(json.dumps(sent)))
    assert parsed.detail[0].loc == ["amount"] and "> 0" in parsed.detail[0].msg


def test_details_never_carry_the_input_or_an_exception() -> None:
    raw = {"loc": ("body", "x", 0), "msg": "bad", "type": "value_error",
           "input": "secret", "ctx": {"error": ValueError("x")}}
    assert clean_detail(raw) == {"loc": ["body", "x", 0], "msg": "bad", "type": "value_error"}
    body = validation_body([raw, raw], "thing")
    assert body["error"] == "2 validation errors for thing"
    json.dumps(body)  # encodable

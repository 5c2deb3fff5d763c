"""The one error shape: FastAPI's validation errors answered like BentoML's 400s."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.testclient import TestClient

from fraud.api.errors import (
    ErrorBody,
    LedgerDown,
    NotReady,
    NotStorable,
    ScoringFailed,
    api_error,
    api_errors,
    clean_detail,
    fastapi_validation_handler,
    http_error_handler,
    ledger_down,
    validation_body,
)
from fraud.schema import EXAMPLE_TRANSACTION, ShareChange, Transaction
from fraud.serving.coalesce import Overloaded
from fraud.serving.path import RowsFailed
from fraud.serving.readiness import LedgerRefusing, Ungated
from fraud.store.records import DecisionRejected, LedgerUnavailable

app = FastAPI()
app.add_exception_handler(RequestValidationError, fastapi_validation_handler)
app.add_exception_handler(HTTPException, http_error_handler)


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


def test_starlettes_http_errors_answer_in_the_one_shape_with_status_and_headers() -> None:
    client = TestClient(app)
    missing = client.get("/no-such-route")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    wrong = client.get("/admin/share")
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method Not Allowed"})
    assert wrong.headers["allow"] == "POST"


@pytest.mark.parametrize(("exc", "answer", "status", "message"), [
    (Ungated("service not ready: no gate report"), NotReady, 503,
     "service not ready: no gate report"),
    (LedgerRefusing("ledger unavailable (sqlite:/l): disk full"), LedgerDown, 503,
     "ledger unavailable (LEDGER_UNAVAILABLE): nothing was decided; retry later"),
    (RowsFailed(["model_a", "model_b"], [1]), ScoringFailed, 500,
     "model_b failed to score 1 of 2 rows; nothing was decided"),
    (Overloaded("10000 rows wait"), LedgerDown, 503,
     "overloaded (OVERLOADED): nothing was decided: 10000 rows wait"),
    (LedgerUnavailable("cannot write to postgresql://u@db:5432/l: disk full"), LedgerDown,
     503, "ledger unavailable (LEDGER_UNAVAILABLE): nothing was decided; retry later"),
    (DecisionRejected("psycopg: A string literal cannot contain NUL (0x00) characters."),
     NotStorable, 400, "user_id or another text field cannot be stored (NOT_STORABLE) (e.g. "
     "an unpaired surrogate or a NUL character): nothing was decided"),
])
def test_each_refusal_and_failure_is_answered_with_its_status(
        exc: Exception, answer: type, status: int, message: str) -> None:
    error = api_error(exc)
    assert type(error) is answer and error.error_code.value == status
    assert str(error) == message


def test_any_other_failure_is_left_to_bentoml_unchanged() -> None:
    assert api_error(RuntimeError("router exploded")) is None
    original = RuntimeError("router exploded")
    with pytest.raises(RuntimeError) as raised, api_errors():
        raise original
    assert raised.value is original


def test_inside_api_errors_a_known_failure_leaves_as_its_answer() -> None:
    with pytest.raises(LedgerDown) as raised, api_errors():
        raise Overloaded("too many rows wait")
    assert str(raised.value) == "overloaded (OVERLOADED): nothing was decided: too many rows wait"
    assert raised.value.__suppress_context__  # the answer, not the internal traceback


def test_ledger_down_answers_a_stable_code_and_logs_where_and_why(
        caplog: pytest.LogCaptureFixture) -> None:
    answer = ledger_down("host=db port=5432 user=api dbname=ledger",
                         LedgerUnavailable("connection refused"))
    assert answer.status_code == 503
    assert json.loads(answer.body) == {
        "error": "ledger unavailable (LEDGER_UNAVAILABLE): nothing was read; retry later"}
    assert "host=db port=5432 user=api dbname=ledger: connection refused" in caplog.text

"""The one shape of every error answer: `{"error": "<what and why>", "detail": [...]}`.

`error` is always there and says what went wrong in words; `detail` lists the offending fields
of a 400 (pydantic's loc/msg/type, as BentoML sends them). A route may add its own fields (a
/feedback 404 repeats the request_id), so the published schema allows more properties.

`api_error` is the one mapping from what readiness and scoring raise (fraud/serving) to these
answers; `ledger_down` is the operations routes' answer when the ledger cannot be read.

A failure of the ledger is answered with a stable code (LEDGER_UNAVAILABLE, OVERLOADED,
NOT_STORABLE) and never with its detail: the store's host, user, database and the driver's
words go to the log only (with the password redacted by fraud/store/backend.py).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException, InvalidArgument
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from fraud.serving.coalesce import Overloaded
from fraud.serving.path import RowsFailed
from fraud.serving.readiness import LedgerRefusing, Ungated
from fraud.store.records import DecisionRejected, LabelOutcome, LedgerUnavailable


class ErrorDetail(BaseModel):
    """One rule a field broke."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(..., description="Path to the field; [] for the whole body.")
    msg: str = Field(..., description="The rule, in words.")
    type: str = Field(..., description="pydantic's error type, e.g. value_error.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the service."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "example": {"error": "1 validation error for Transaction",
                    "detail": [{"loc": ["amount"], "msg": "Value error, amount must be a "
                                "finite number > 0 (got -1)", "type": "value_error"}]}})

    error: str = Field(..., description="What went wrong and why.")
    detail: list[ErrorDetail] | None = Field(
        None, description="For a 400: each field that broke a rule.")


def error_body(message: str, detail: Iterable[Mapping[str, Any]] | None = None
               ) -> dict[str, Any]:
    """An error answer as a dict (validated against ErrorBody when it has details)."""
    if detail is None:
        return {"error": message}
    return {"error": message, "detail": [clean_detail(d) for d in detail]}


def clean_detail(d: Mapping[str, Any]) -> dict[str, Any]:
    """loc/msg/type of one pydantic error: never the input (it may be large or a secret),
    never ctx (it may hold an exception object that JSON cannot encode)."""
    return {"loc": [x if isinstance(x, int) else str(x) for x in d.get("loc", ())],
            "msg": str(d.get("msg", "")), "type": str(d.get("type", "value_error"))}


def error_json(message: str) -> bytes:
    """The body bytes of an error answer without details."""
    return json.dumps(error_body(message)).encode()


def validation_body(errors: Iterable[Mapping[str, Any]], what: str = "request") -> dict:
    """A 400 body for pydantic errors, worded like BentoML's own 400s."""
    detail = list(errors)
    plural = "" if len(detail) == 1 else "s"
    return error_body(f"{len(detail)} validation error{plural} for {what}", detail)


async def fastapi_validation_handler(request: Any, exc: Any) -> Any:
    """FastAPI's RequestValidationError as a 400 in the one shape (FastAPI's default is a
    422 with a `detail` list only): the operations routes answer like the BentoML APIs."""
    return JSONResponse(validation_body(exc.errors(), f"{request.method} "
                                                     f"{request.url.path}"), status_code=400)


async def http_error_handler(request: Any, exc: Any) -> JSONResponse:
    """Starlette's HTTPException (e.g. an unparseable body) in the one shape, not FastAPI's
    {"detail": "..."}: its status and headers, its detail as `error`."""
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code,
                        headers=exc.headers)


log = logging.getLogger("fraudserve")
LEDGER_UNAVAILABLE = "ledger unavailable (LEDGER_UNAVAILABLE)"
# An absolute path in a public text keeps its last part: the reason stays readable, the
# server's directories stay private (the log keeps the whole text).
_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+~-]+/)+([\w.@+~-]+)")


def without_paths(text: str) -> str:
    """`text` with each absolute filesystem path cut to its last part."""
    return _PATH.sub(r"\1", text)

OVERLOADED = "overloaded (OVERLOADED)"
NOT_STORABLE = "user_id or another text field cannot be stored (NOT_STORABLE)"


def ledger_down_body(where: str, exc: BaseException, not_done: str = "nothing was read"
                     ) -> dict[str, str]:
    """The body of a 503 when the ledger cannot answer: a stable code, and the detail
    (`where`, the driver's words) in the log only."""
    log.warning("%s: %s: %s", LEDGER_UNAVAILABLE, where, exc)
    return {"error": f"{LEDGER_UNAVAILABLE}: {not_done}; retry later"}


def ledger_down(where: str, exc: BaseException, not_done: str = "nothing was read"
                ) -> JSONResponse:
    """503 of an operations route (/ab-stats, /report, /experiments, ...) that reads the
    ledger when the ledger cannot answer (ledger_down_body)."""
    return JSONResponse(ledger_down_body(where, exc, not_done), status_code=503)


class NotReady(BentoMLException):
    """Answered while the service refuses to serve (503)."""

    error_code = HTTPStatus.SERVICE_UNAVAILABLE


class LedgerDown(BentoMLException):
    """The ledger cannot store decisions: refuse rather than answer what is not kept (503)."""

    error_code = HTTPStatus.SERVICE_UNAVAILABLE


class NotStorable(InvalidArgument):
    """The store refused the request's text (e.g. an unpaired surrogate in user_id): 400."""


class NotExplainable(BentoMLException):
    """The arm's model is not a tree ensemble, so it has no exact explanation (501)."""

    error_code = HTTPStatus.NOT_IMPLEMENTED


class ScoringFailed(BentoMLException):
    """A model failed on some rows of the request (500, naming the arm)."""

    error_code = HTTPStatus.INTERNAL_SERVER_ERROR


FEEDBACK_ANSWERS: dict[LabelOutcome, tuple[int, dict[str, str]]] = {
    LabelOutcome.CREATED: (200, {"status": "created"}),
    LabelOutcome.DUPLICATE: (200, {"status": "duplicate"}),
    LabelOutcome.UNKNOWN: (404, {"error": "request_id is unknown: no such decision"}),
    LabelOutcome.CONFLICT: (409, {"error": "request_id already has the opposite label; "
                                           "labels are final"}),
}


def api_error(exc: BaseException) -> BentoMLException | None:
    """The answer to a request that readiness or scoring refused, or None for any other
    failure (BentoML answers that 500 and logs it):

    - not gated: 503 NotReady; the ledger refusing writes, too much queued (Overloaded) or a
      commit that failed (LedgerUnavailable): 503 LedgerDown, nothing decided;
    - a model that failed on some rows (RowsFailed): 500 ScoringFailed, naming the arm;
    - text the store cannot hold (DecisionRejected): 400 NotStorable.
    """
    if isinstance(exc, Ungated):
        return NotReady(without_paths(str(exc)))
    if isinstance(exc, LedgerRefusing):  # the ledger logged why when it started refusing
        return LedgerDown(f"{LEDGER_UNAVAILABLE}: nothing was decided; retry later")
    if isinstance(exc, RowsFailed):
        return ScoringFailed(str(exc))
    if isinstance(exc, Overloaded):
        return LedgerDown(f"{OVERLOADED}: nothing was decided: {exc}")
    if isinstance(exc, LedgerUnavailable):
        log.warning("%s: %s", LEDGER_UNAVAILABLE, exc)
        return LedgerDown(f"{LEDGER_UNAVAILABLE}: nothing was decided; retry later")
    if isinstance(exc, DecisionRejected):
        log.warning("%s: %s", NOT_STORABLE, exc)
        return NotStorable(f"{NOT_STORABLE} (e.g. an unpaired surrogate or a NUL "
                           "character): nothing was decided")
    return None


@contextmanager
def api_errors() -> Iterator[None]:
    """Inside, what `api_error` knows leaves as that API error (without the original's
    traceback); any other exception leaves unchanged."""
    try:
        yield
    except Exception as exc:
        error = api_error(exc)
        if error is None:
            raise
        raise error from None

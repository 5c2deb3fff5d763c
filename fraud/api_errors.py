"""What the API answers when it cannot answer 200: BentoML exceptions with their status codes,
and the status and body of each /feedback outcome. service.py raises and returns these; the
rules that decide them live elsewhere (fraud/scoring.py, fraud/ledger.py)."""

from __future__ import annotations

from http import HTTPStatus

from bentoml.exceptions import BentoMLException, InvalidArgument

from fraud.ledger import LabelOutcome


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

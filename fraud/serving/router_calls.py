"""An API worker's calls to the router: which of its two APIs a call takes, a connection that is
never recycled, and the router's answers' media type stated once.

By default every call goes to `score_bulk`: each API worker already coalesces its requests,
and BentoML's adaptive batching on top (`score`: a dispatcher polling every millisecond, one
batch scored at a time) saved nothing measurable with 1 and 2 API workers and cost a quarter
of the peak with 4 (docs/performance.md, "When adaptive batching pays"). With `batching` on
(FRAUDSERVE_BATCHING=1) a coalesced batch (this worker is under load) joins the router's
adaptive batches and a lone row still goes straight in; without coalescing, the same rule
counts this worker's calls under way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fraud.serving.path import RouterCall

BATCH_WHEN_INFLIGHT = 2  # without coalescing: more calls under way than this join batches
# The router's own calls never recycle their connection: BentoML 1.4.31-1.4.40 (issue #5540)
# aborts in-flight calls when it does, which surfaced as 500s under load.
NEVER = 2**31 - 1


class RouterCalls:
    """One API worker's router calls (create it in the worker, after the fork).

    `score` and `score_bulk` are the router's two APIs; `single` is the scoring path's call
    for /predict's rows, `bulk` for /predict_batch's.
    """

    def __init__(self, score: RouterCall, score_bulk: RouterCall, *, batching: bool = False,
                 coalesce: bool = True, batch_when_inflight: int = BATCH_WHEN_INFLIGHT) -> None:
        self.score, self.score_bulk = score, score_bulk
        self.batching, self.coalesce = batching, coalesce
        self.batch_when_inflight = batch_when_inflight
        self.inflight = 0  # this worker's single calls under way

    def batched(self, rows: int) -> bool:
        """Whether a single call of `rows` rows, counted in `inflight`, joins the batches."""
        busy = rows > 1 if self.coalesce else self.inflight > self.batch_when_inflight
        return self.batching and busy

    async def single(self, rows: np.ndarray) -> np.ndarray:
        self.inflight += 1
        try:
            if self.batched(len(rows)):
                return await self.score(rows)
            return await self.score_bulk(rows)
        finally:
            self.inflight -= 1

    async def bulk(self, rows: np.ndarray) -> np.ndarray:
        return await self.score_bulk(rows)


def runner_connection() -> dict[str, float]:
    """BentoML's `runner_connection` setting of the router: never recycle (see NEVER)."""
    return {"max_requests": NEVER, "max_age": float(NEVER)}


def state_json_media_type(apis: Iterable[Any]) -> None:
    """Set the media type of every API answering JSON to "application/json", once.

    BentoML otherwise works an array or list output's media type out from its JSON schema,
    building a pydantic TypeAdapter and the schema on every response (~12-17% of the router's
    CPU); the answer is always "application/json".
    """
    for api in apis:
        spec = api.output_spec
        if spec.media_type is None and spec.mime_type() == "application/json":
            spec.media_type = "application/json"

"""Which of the router's APIs an API worker's call takes (`score`: adaptive batches, or
`score_bulk`: straight in), and the router's JSON media type stated once."""

from __future__ import annotations

import asyncio
from typing import Any

import bentoml
import numpy as np
import pytest

from fraud.serving.router_calls import (
    BATCH_WHEN_INFLIGHT,
    NEVER,
    RouterCalls,
    runner_connection,
    state_json_media_type,
)


class Router:
    """The router's two APIs; each call waits for `gate` (when set) and records its API."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.fail = fail

    async def _call(self, api: str, rows: np.ndarray) -> np.ndarray:
        self.calls.append(api)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("router down")
        return np.zeros(len(rows))

    async def score(self, rows: np.ndarray) -> np.ndarray:
        return await self._call("score", rows)

    async def score_bulk(self, rows: np.ndarray) -> np.ndarray:
        return await self._call("score_bulk", rows)


def rows(n: int) -> np.ndarray:
    return np.zeros((n, 8))


def calls_for(router: Router, **kw: Any) -> RouterCalls:
    return RouterCalls(router.score, router.score_bulk, **kw)


def test_with_batching_a_lone_row_goes_straight_in_and_a_batch_joins_the_batches() -> None:
    router = Router()
    calls = calls_for(router, batching=True)
    asyncio.run(calls.single(rows(1)))
    asyncio.run(calls.single(rows(5)))
    assert router.calls == ["score_bulk", "score"]
    assert calls.inflight == 0


def test_by_default_every_call_goes_straight_in() -> None:
    router = Router()
    calls = calls_for(router)
    for n in (1, 5, 300):
        asyncio.run(calls.single(rows(n)))
    asyncio.run(calls.bulk(rows(300)))
    assert router.calls == ["score_bulk"] * 4


def test_without_coalescing_calls_join_the_batches_once_more_than_two_are_under_way() -> None:
    router = Router()
    calls = calls_for(router, batching=True, coalesce=False)

    async def burst() -> None:
        router.gate = asyncio.Event()
        pending = [asyncio.create_task(calls.single(rows(1)))
                   for _ in range(BATCH_WHEN_INFLIGHT + 2)]
        while len(router.calls) < len(pending):
            await asyncio.sleep(0)
        assert calls.inflight == len(pending)
        router.gate.set()
        await asyncio.gather(*pending)

    asyncio.run(burst())
    assert router.calls == ["score_bulk"] * BATCH_WHEN_INFLIGHT + ["score"] * 2
    assert calls.inflight == 0


def test_a_failed_call_is_no_longer_counted_under_way() -> None:
    calls = calls_for(Router(fail=True), coalesce=False)
    with pytest.raises(RuntimeError, match="router down"):
        asyncio.run(calls.single(rows(1)))
    assert calls.inflight == 0


def test_the_routers_connection_is_never_recycled() -> None:
    assert runner_connection() == {"max_requests": NEVER, "max_age": float(NEVER)}
    assert NEVER == 2**31 - 1


@bentoml.service
class Toy:
    @bentoml.api
    def array(self, rows: np.ndarray) -> np.ndarray:
        return rows

    @bentoml.api
    def listing(self) -> list[str]:
        return []

    @bentoml.api
    def text(self) -> str:
        return ""


def test_json_answers_get_their_media_type_once() -> None:
    specs = {name: api.output_spec for name, api in Toy.apis.items()}
    assert specs["array"].media_type is None  # BentoML would work it out per response
    state_json_media_type(Toy.apis.values())
    assert specs["array"].media_type == "application/json"
    assert specs["listing"].media_type == "application/json"
    assert specs["text"].media_type is None  # not JSON: left to BentoML

"""An API worker's scoring path: route, score through the router, decide, wait for the commit.

Single transactions are coalesced (fraud/serving/coalesce.py): those that arrive while this worker's
router call is in flight leave together in the next call, and their decisions are queued for
the ledger together (`Experiment.decide_many`), so one router call and one ledger transaction
serve the whole batch. A bulk request (`/predict_batch`) is its own batch. Either way a
request is answered only once its decisions are committed.

Failures stay with their rows where they can: a model that fails on some rows fails only the
requests holding them (`RowsFailed`, counted against that arm; the request's other rows, left
undecided, still count as attempted through `on_undecided`, so a bulk's error rate is errors
per row tried, not per row tried and lost with it); a router call that fails for
a batch is retried per request (a bad request cannot fail its neighbours), except when the
router is unreachable, which fails the batch at once. No BentoML here: the service maps
these exceptions to status codes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from fraud.experiment.decisions import Scored
from fraud.experiment.live import Experiment
from fraud.experiment.state import ExperimentState
from fraud.schema import AMOUNT_INDEX, ARMS, Arm, Prediction
from fraud.serving.coalesce import Coalescer, Job
from fraud.serving.router import failed_rows
from fraud.store.records import Source

ARM_INDEX = {arm: i for i, arm in enumerate(ARMS)}
AMOUNT = AMOUNT_INDEX  # None: the schema names no amount (money metrics read 0)
ROUTER_ATTEMPTS = 4

RouterCall = Callable[[np.ndarray], Awaitable[np.ndarray]]
RowSink = Callable[[list[str], list[Arm], ExperimentState], None]  # users, arms, their state


class RowsFailed(RuntimeError):
    """A model failed on some of the request's rows; nothing of the request was decided."""

    def __init__(self, arms: Sequence[Arm], bad: Sequence[int]) -> None:
        self.bad = list(bad)
        names = sorted({arms[i] for i in bad})
        super().__init__(f"{', '.join(names)} failed to score {len(bad)} of {len(arms)} rows; "
                         f"nothing was decided")


@dataclass(frozen=True)
class Request:
    """One request's rows, routed: column 0 of `rows` is the arm index, the rest features."""

    user_ids: list[str]
    arms: list[Arm]
    rows: np.ndarray
    state: ExperimentState
    source: Source
    started: float


Outcome = tuple[list[Prediction], Any] | BaseException  # (answers, commit future) or why not


class ScoringPath:
    """Scores requests for one API worker (create it in the worker, after the fork)."""

    def __init__(self, experiment: Experiment, single: RouterCall, bulk: RouterCall, *,
                 coalesce: bool = True, max_rows: int = 256, max_waiting: int = 10_000,
                 linger: tuple[float, int, int] = (0.0, 4, 32),
                 on_errors: RowSink | None = None, on_undecided: RowSink | None = None) -> None:
        self.experiment = experiment
        self.single = single
        self.bulk = bulk
        self.on_errors = on_errors
        self.on_undecided = on_undecided
        # Off: every request its own router call, at once (the design before coalescing).
        self.coalescer: Coalescer[Request, Outcome] = Coalescer(
            self._process, max_rows=max_rows if coalesce else 1, max_waiting=max_waiting,
            max_inflight=1 if coalesce else 1_000_000, split_on=_not_unreachable,
            linger_s=linger[0], linger_after=linger[1], linger_fill=linger[2])

    async def score(self, user_ids: list[str], features: np.ndarray,
                    bulk: bool) -> list[Prediction]:
        """Decisions for the rows, committed to the ledger, in order. Raises RowsFailed,
        Overloaded, LedgerUnavailable, DecisionRejected or the router's error."""
        started = time.perf_counter()
        state = self.experiment.state  # one snapshot: route and record under one period
        arms = [self.experiment.route(u, state) for u in user_ids]
        rows = np.empty((len(arms), features.shape[1] + 1), dtype=np.float64)
        rows[:, 0] = [ARM_INDEX[a] for a in arms]  # column 0: the arm index (one copy, no
        rows[:, 1:] = features                     # column_stack: it was 10% of this path)
        request = Request(user_ids, arms, rows, state, "batch" if bulk else "predict", started)
        if bulk:
            outcome = (await self._decide([request], self.bulk))[0]
            if isinstance(outcome, BaseException):
                raise outcome
        else:
            outcome = await self.coalescer.submit(request, len(user_ids))
        answers, committed = outcome
        await asyncio.wrap_future(committed)
        return answers

    async def _process(self, jobs: Sequence[Job[Request, Outcome]]) -> list[Outcome]:
        live = [i for i, job in enumerate(jobs) if not job.cancelled()]
        outcomes: list[Outcome] = [asyncio.CancelledError()] * len(jobs)
        if live:
            decided = await self._decide([jobs[i].item for i in live], self.single)
            for i, outcome in zip(live, decided, strict=True):
                outcomes[i] = outcome
        return outcomes

    async def _decide(self, requests: list[Request], call: RouterCall) -> list[Outcome]:
        """One router call for the requests' rows, then their decisions queued together."""
        rows = requests[0].rows if len(requests) == 1 else np.vstack([r.rows for r in requests])
        try:
            proba = await _with_retries(call, rows)
        except Exception as exc:
            if len(requests) == 1 or not _not_unreachable(exc):  # else counted once split
                for r in requests:
                    self._count(r, range(len(r.user_ids)))
            raise
        outcomes: list[Outcome | None] = [None] * len(requests)
        scored: list[Scored] = []
        at = 0
        for i, r in enumerate(requests):
            part = proba[at:at + len(r.user_ids)]
            at += len(r.user_ids)
            bad = failed_rows(part)
            if bad:  # a model failed on its rows: count them against that arm only
                self._count(r, bad)
                failed = set(bad)
                _send(self.on_undecided, r, [j for j in range(len(r.user_ids))
                                             if j not in failed])
                outcomes[i] = RowsFailed(r.arms, bad)
                continue
            shadow = None
            if part.ndim == 2:  # shadow mode: the other model's score, stored, never returned
                part, shadow = part[:, 0], part[:, 1]
            scored.append(Scored(r.user_ids, r.arms, part.tolist(),
                                 (time.perf_counter() - r.started) * 1000, r.source, r.state,
                                 (r.rows[:, 1 + AMOUNT].tolist() if AMOUNT is not None
                                  else [0.0] * len(r.rows)),
                                 None if shadow is None else shadow.tolist()))
        try:
            decided: list[Outcome] = list(self.experiment.decide_many(scored))
        except Exception as exc:  # e.g. LedgerUnavailable: too much already waits
            decided = [exc] * len(scored)
        it = iter(decided)
        return [next(it) if o is None else o for o in outcomes]

    def _count(self, r: Request, rows: Sequence[int] | range) -> None:
        _send(self.on_errors, r, rows)


def _send(sink: RowSink | None, r: Request, rows: Sequence[int] | range) -> None:
    """Rows of `r` (their users, arms and state) to `sink`, if any."""
    if sink is not None and len(rows):
        sink([r.user_ids[i] for i in rows], [r.arms[i] for i in rows], r.state)


def _not_unreachable(exc: BaseException) -> bool:
    """Worth retrying request by request: any failure but an unreachable router."""
    return not isinstance(exc, aiohttp.ClientConnectionError)


async def _with_retries(call: RouterCall, rows: np.ndarray) -> np.ndarray:
    for attempt in range(ROUTER_ATTEMPTS):
        try:
            return await call(rows)
        except aiohttp.ClientConnectionError:
            # The router closes keep-alive connections idle for 5 s while the client keeps
            # them 15 s (neither is configurable per dependency in BentoML 1.4), so after a
            # quiet spell pooled connections die under us; each failure discards one.
            # Scoring is pure: retry on another connection.
            if attempt == ROUTER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")

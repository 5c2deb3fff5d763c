"""Natural batching in an API worker: requests arriving while a call is in flight share the next.

A lone request goes out at once (no timer, no batching wait). While a call is in flight, new
requests queue; when it returns, everything queued (up to `max_rows`) leaves as one call.
Under load the batches grow by themselves, and the per-call costs (an HTTP hop, serialisation,
a ledger transaction) are paid once per batch instead of once per request.

- **Linger under load** (`linger_s` > 0): when a call of `linger_after` jobs or more has just
  returned, the next call waits up to `linger_s` until as many rows wait as that call carried
  (at most `linger_fill`; at once when they are there). At light load calls hold one job and
  nobody waits; at peak the calls grow, and with them what each call's fixed cost is spread
  over.

- **Bounded**: a batch carries at most `max_rows` rows (a single larger job goes alone), and
  at most `max_waiting` rows wait; beyond that `submit` refuses at once (`Overloaded`)
  rather than queueing without end.
- **Errors per job where possible**: `process` answers each job separately (a result or an
  exception). If it raises for the whole batch and the batch held several jobs, and
  `split_on` says the error may belong to one job, each job is retried alone, so one bad
  job cannot fail the others; a failure that is not a job's fault (`split_on` false, e.g. the
  router is down) fails the batch at once.
- **Cancellation**: a job whose caller was cancelled while it waited is dropped before its
  batch leaves; one cancelled while its batch is in flight is completed but nobody is answered
  (`Job.cancelled` lets `process` skip work for it, e.g. storing a decision nobody receives).
  In the service what cancels a caller is BentoML's traffic timeout, not a client's
  disconnect (Starlette does not watch for one).

Not thread-safe: one Coalescer per event loop (an API worker has one). No BentoML here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(RuntimeError):
    """Too many rows already wait for a call: answer 503 rather than queue without bound."""


@dataclass(eq=False)
class Job(Generic[T, R]):
    """One caller's item, its row count, and the future its caller waits on."""

    item: T
    rows: int
    future: asyncio.Future[R] = field(repr=False)

    def cancelled(self) -> bool:
        """The caller went away (its wait was cancelled): nobody will read the result."""
        return self.future.cancelled()


Process = Callable[[Sequence[Job[T, R]]], Awaitable[Sequence[R | BaseException]]]


class Coalescer(Generic[T, R]):
    """Queues jobs and runs `process` on batches of them, at most `max_inflight` at a time."""

    def __init__(self, process: Process[T, R], *, max_rows: int = 256,
                 max_waiting: int = 10_000, max_inflight: int = 1,
                 split_on: Callable[[BaseException], bool] = lambda exc: True,
                 linger_s: float = 0.0, linger_after: int = 4, linger_fill: int = 32) -> None:
        if max_rows < 1 or max_waiting < 1 or max_inflight < 1:
            raise ValueError("max_rows, max_waiting and max_inflight must be positive")
        if linger_s < 0 or linger_after < 2 or linger_fill < 2:
            raise ValueError("linger_s must be >= 0, linger_after and linger_fill >= 2")
        self.linger_s, self.linger_after = linger_s, linger_after
        self.linger_fill = min(linger_fill, max_rows)
        self._fill = self.linger_fill  # rows that end the current linger
        self._filled = asyncio.Event()
        self.process = process
        self.max_rows = max_rows
        self.max_waiting = max_waiting
        self.max_inflight = max_inflight
        self.split_on = split_on
        self.inflight = 0
        self.waiting_rows = 0
        self._queue: deque[Job[T, R]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()  # keep dispatchers referenced

    async def submit(self, item: T, rows: int = 1) -> R:
        """Queue `item` (`rows` rows) and wait for its result (or its exception)."""
        if self.waiting_rows + rows > self.max_waiting and self._queue:
            raise Overloaded(f"{self.waiting_rows} rows already wait for this worker's "
                             f"scoring calls (limit {self.max_waiting})")
        job: Job[T, R] = Job(item, rows, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self.waiting_rows += rows
        if self.waiting_rows >= self._fill:
            self._filled.set()
        if self.inflight < self.max_inflight:
            self.inflight += 1
            task = asyncio.create_task(self._dispatch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await job.future

    def take(self) -> list[Job[T, R]]:
        """The next batch: queued jobs in order, skipping cancelled ones, up to max_rows (a
        first job larger than that goes alone)."""
        batch: list[Job[T, R]] = []
        rows = 0
        while self._queue:
            job = self._queue[0]
            if job.cancelled():
                self._queue.popleft()
                self.waiting_rows -= job.rows
                continue
            if batch and rows + job.rows > self.max_rows:
                break
            self._queue.popleft()
            self.waiting_rows -= job.rows
            batch.append(job)
            rows += job.rows
        return batch

    async def _dispatch(self) -> None:
        # Holds one in-flight slot (taken by submit) until the queue is empty.
        try:
            while batch := self.take():
                await self._run(batch)
                if self.linger_s and len(batch) >= self.linger_after:
                    await self._linger(sum(job.rows for job in batch))
        finally:
            self.inflight -= 1

    async def _linger(self, last_rows: int) -> None:
        """Under load (the last batch held several jobs), wait up to `linger_s` for as many
        rows as that batch carried (at most `linger_fill`) before the next call, even when
        none wait yet: its callers are about to come back (a closed loop) or as many
        arrive in the time of a call (an open one). Fewer, larger calls; and a lone request
        right after a large call does not leave alone and split the callers into a small
        call and a large one, which then alternate."""
        self._fill = min(self.linger_fill, last_rows)
        try:
            if self.waiting_rows >= self._fill:
                return
            self._filled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._filled.wait(), self.linger_s)
        finally:
            self._fill = self.linger_fill

    async def _run(self, batch: list[Job[T, R]]) -> None:
        try:
            outcomes = await self.process(batch)
        except Exception as exc:
            if len(batch) > 1 and self.split_on(exc):
                for job in batch:  # one at a time: find the job the error belongs to
                    await self._run([job])
                return
            outcomes = [exc] * len(batch)
        except BaseException as exc:  # cancelled dispatcher (shutdown): fail, then re-raise
            _settle(batch, [exc] * len(batch))
            raise
        _settle(batch, outcomes)


def _settle(batch: Sequence[Job[T, R]], outcomes: Sequence[R | BaseException]) -> None:
    if len(outcomes) != len(batch):
        error = RuntimeError(f"process answered {len(outcomes)} of {len(batch)} jobs")
        outcomes = [error] * len(batch)
    for job, outcome in zip(batch, outcomes, strict=True):
        if job.future.done():  # cancelled while in flight: nobody is waiting
            continue
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

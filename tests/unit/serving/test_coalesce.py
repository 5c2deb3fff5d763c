"""Natural batching (fraud/serving/coalesce.py): who goes together, bounds, errors and
cancellation."""

import asyncio

import pytest

from fraud.serving.coalesce import Coalescer, Overloaded


class Router:
    """A process function that records its batches and can be held in flight."""

    def __init__(self, fail_on: str | None = None, error: type[Exception] = ValueError) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_on = fail_on
        self.error = error

    async def __call__(self, jobs):
        self.batches.append([j.item for j in jobs])
        await self.gate.wait()
        if self.fail_on is not None and any(j.item == self.fail_on for j in jobs):
            raise self.error(f"cannot score {self.fail_on}")
        return [f"scored {j.item}" for j in jobs]


def run(coro):
    return asyncio.run(coro)


async def queue_behind(c, first, rest):
    """`first` leaves (its call held in flight by a closed gate), then `rest` queue behind."""
    head = asyncio.create_task(c.submit(first))
    await asyncio.sleep(0)
    tail = [asyncio.create_task(c.submit(x)) for x in rest]
    await asyncio.sleep(0)
    return head, tail


def test_a_lone_request_goes_at_once():
    async def main():
        router = Router()
        c = Coalescer(router)
        assert await asyncio.wait_for(c.submit("a"), 1) == "scored a"
        assert router.batches == [["a"]] and c.inflight == 0
    run(main())


def test_requests_arriving_during_a_call_share_the_next_one():
    async def main():
        router = Router()
        router.gate.clear()
        c = Coalescer(router)
        first, later = await queue_behind(c, "a", "bcde")
        assert router.batches == [["a"]]  # b..e wait: one call in flight per worker
        router.gate.set()
        assert await asyncio.gather(first, *later) == [f"scored {x}" for x in "abcde"]
        assert router.batches == [["a"], ["b", "c", "d", "e"]]
    run(main())


def test_batches_are_bounded_in_rows_and_a_big_job_goes_alone():
    async def main():
        router = Router()
        router.gate.clear()
        c = Coalescer(router, max_rows=4)
        tasks = [asyncio.create_task(c.submit("first"))]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(c.submit(f"r{i}")) for i in range(6)]
        tasks.append(asyncio.create_task(c.submit("big", rows=9)))
        tasks.append(asyncio.create_task(c.submit("after")))
        await asyncio.sleep(0)
        router.gate.set()
        await asyncio.gather(*tasks)
        assert router.batches == [["first"], ["r0", "r1", "r2", "r3"], ["r4", "r5"], ["big"],
                                  ["after"]]
    run(main())


def test_too_many_waiting_rows_are_refused_not_queued():
    async def main():
        router = Router()
        router.gate.clear()
        c = Coalescer(router, max_waiting=3)
        first, waiting = await queue_behind(c, "a", "bcd")  # a in flight no longer waits
        with pytest.raises(Overloaded, match="3 rows already wait"):
            await c.submit("e")
        router.gate.set()
        assert len(await asyncio.gather(first, *waiting)) == 4
        assert c.waiting_rows == 0
    run(main())


def test_a_caller_that_went_away_is_dropped_before_its_batch_leaves():
    async def main():
        router = Router()
        router.gate.clear()
        c = Coalescer(router)
        first = asyncio.create_task(c.submit("a"))
        await asyncio.sleep(0)
        gone = asyncio.create_task(c.submit("gone"))
        stays = asyncio.create_task(c.submit("stays"))
        await asyncio.sleep(0)
        gone.cancel()
        router.gate.set()
        assert await asyncio.gather(first, stays) == ["scored a", "scored stays"]
        assert gone.cancelled() and router.batches == [["a"], ["stays"]]
        assert c.waiting_rows == 0
    run(main())


def test_a_caller_cancelled_in_flight_leaves_the_batch_to_finish():
    async def main():
        router = Router()
        router.gate.clear()
        c = Coalescer(router)
        a = asyncio.create_task(c.submit("a"))
        b = asyncio.create_task(c.submit("b"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        a.cancel()
        await asyncio.sleep(0)
        router.gate.set()
        assert await b == "scored b"
        assert a.cancelled() and router.batches == [["a", "b"]]  # both left together
    run(main())


def test_a_failing_batch_is_retried_job_by_job_so_only_the_bad_job_fails():
    async def main():
        router = Router(fail_on="bad")
        router.gate.clear()
        c = Coalescer(router)
        first, rest = await queue_behind(c, "a", ("b", "bad", "c"))
        router.gate.set()
        out = await asyncio.gather(first, *rest, return_exceptions=True)
        assert out[:2] == ["scored a", "scored b"] and out[3] == "scored c"
        assert isinstance(out[2], ValueError) and "cannot score bad" in str(out[2])
        assert router.batches == [["a"], ["b", "bad", "c"], ["b"], ["bad"], ["c"]]
    run(main())


def test_a_failure_that_is_no_jobs_fault_fails_the_batch_at_once():
    async def main():
        router = Router(fail_on="b", error=ConnectionError)
        router.gate.clear()
        c = Coalescer(router, split_on=lambda exc: not isinstance(exc, ConnectionError))
        first, rest = await queue_behind(c, "a", "bc")
        router.gate.set()
        out = await asyncio.gather(first, *rest, return_exceptions=True)
        assert out[0] == "scored a"
        assert all(isinstance(o, ConnectionError) for o in out[1:])
        assert router.batches == [["a"], ["b", "c"]]  # no retries one by one
    run(main())


def test_bounds_must_be_positive():
    with pytest.raises(ValueError):
        Coalescer(Router(), max_rows=0)


def test_linger_bounds_are_checked():
    with pytest.raises(ValueError):
        Coalescer(Router(), linger_s=-0.001)
    with pytest.raises(ValueError):
        Coalescer(Router(), linger_s=0.001, linger_fill=1)


def test_after_a_one_row_call_the_next_call_does_not_linger():
    async def main():
        router = Router()
        router.gate.clear()
        c = Coalescer(router, linger_s=1.0, linger_after=4, linger_fill=6)
        loop = asyncio.get_running_loop()
        first, later = await queue_behind(c, "a", "bcde")
        started = loop.time()
        router.gate.set()  # a (one row) returns: b..e leave at once, nobody lingers
        assert await asyncio.gather(first, *later) == [f"scored {x}" for x in "abcde"]
        assert loop.time() - started < 0.5
        assert router.batches == [["a"], ["b", "c", "d", "e"]]
    run(main())


class Stepped:
    """A process function whose every call waits for its own release."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.releases: list[asyncio.Event] = []

    async def __call__(self, jobs):
        self.batches.append([j.item for j in jobs])
        release = asyncio.Event()
        self.releases.append(release)
        await release.wait()
        return [f"scored {j.item}" for j in jobs]


async def until(condition, timeout: float = 5.0) -> None:
    """Let the loop run until `condition()` (a slow machine gets no fixed sleep to miss)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def test_a_linger_ends_early_once_enough_rows_wait_and_at_its_time_otherwise():
    async def main():
        router = Stepped()
        c = Coalescer(router, linger_s=1.0, linger_after=3, linger_fill=4)
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(c.submit(x)) for x in "abcd"]
        await until(lambda: len(router.releases) == 1)
        assert router.batches == [["a", "b", "c", "d"]]
        tasks.append(asyncio.create_task(c.submit("e")))  # queues behind a..d's call
        await until(lambda: c.waiting_rows == 1)
        router.releases[0].set()  # a batch of 4 returns: the next call lingers
        await asyncio.sleep(0.05)
        assert len(router.batches) == 1  # e still waits
        started = loop.time()
        tasks += [asyncio.create_task(c.submit(x)) for x in "fgh"]  # 4 rows wait: go now
        await until(lambda: len(router.releases) == 2)
        assert router.batches[-1] == ["e", "f", "g", "h"]
        assert loop.time() - started < 0.5
        tasks.append(asyncio.create_task(c.submit("i")))
        await until(lambda: c.waiting_rows == 1)
        started = loop.time()
        router.releases[1].set()  # e..h returns with i waiting alone: the whole linger
        await until(lambda: len(router.releases) == 3)
        assert loop.time() - started >= 0.9
        assert router.batches[-1] == ["i"]
        router.releases[2].set()
        assert await asyncio.gather(*tasks) == [f"scored {x}" for x in "abcdefghi"]
    run(main())


def test_after_a_large_call_the_next_waits_for_as_many_rows_even_when_none_wait_yet():
    async def main():
        router = Stepped()
        c = Coalescer(router, linger_s=1.0, linger_after=3, linger_fill=64)
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(c.submit("a"))]
        await until(lambda: len(router.releases) == 1)
        tasks += [asyncio.create_task(c.submit(x)) for x in "bcd"]
        await until(lambda: c.waiting_rows == 3)
        router.releases[0].set()  # a returns (one row): b..d leave at once
        await until(lambda: len(router.releases) == 2)
        router.releases[1].set()  # b..d (3 rows) return with nobody waiting: a linger
        await until(lambda: all(t.done() for t in tasks))
        tasks.append(asyncio.create_task(c.submit("e")))
        await asyncio.sleep(0.05)
        assert len(router.batches) == 2  # e waits for as many rows as the last call (3)
        started = loop.time()
        tasks += [asyncio.create_task(c.submit(x)) for x in "fg"]  # 3 wait (not 64): go
        await until(lambda: len(router.releases) == 3)
        assert router.batches[-1] == ["e", "f", "g"]
        assert loop.time() - started < 0.5
        router.releases[2].set()
        assert await asyncio.gather(*tasks) == [f"scored {x}" for x in "abcdefg"]
    run(main())


@pytest.mark.parametrize(("field", "value"), [
    ("linger_ms", -1), ("linger_ms", 51), ("linger_after", 1), ("linger_fill", 300)])
def test_a_bad_linger_setting_refuses_the_config_naming_the_field(field, value):
    from pydantic import ValidationError

    from fraud.config import ABConfig

    with pytest.raises(ValidationError) as caught:
        ABConfig.model_validate({"coalesce": {field: value}})
    assert f"coalesce.{field}" in str(caught.value)
    shipped = ABConfig().coalesce
    assert (shipped.linger_ms, shipped.linger_after, shipped.linger_fill) == (8.0, 4, 64)

"""The report cache: one computation per interval per worker, whoever asks and however many;
failures kept too; the operations routes serve callers without a key from it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from fraud.api.cache import Cache
from fraud.api.operations import Operations
from fraud.config import ABConfig
from fraud.serving.card import ServedCard


def test_one_computation_per_interval_across_threads() -> None:
    now = [0.0]
    cache = Cache(2.0, lambda: now[0])
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.05)
        return len(calls)

    threads = [threading.Thread(target=cache.get, args=("r", slow)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and cache.get("r", slow) == 1
    now[0] = 1.99
    assert cache.get("r", slow) == 1
    now[0] = 2.0
    assert cache.get("r", slow) == 2


def test_a_failure_is_kept_for_the_interval() -> None:
    now = [0.0]
    cache = Cache(2.0, lambda: now[0])
    calls = []

    def down() -> None:
        calls.append(1)
        raise ConnectionError("ledger down")

    for _ in range(5):
        with pytest.raises(ConnectionError):
            cache.get("r", down)
    assert len(calls) == 1
    now[0] = 3.0
    assert cache.get("r", lambda: "back") == "back"


def test_async_callers_share_one_computation() -> None:
    cache = Cache(60.0)
    calls = []

    async def drift() -> dict[str, int]:
        calls.append(1)
        await asyncio.sleep(0.05)
        return {"n": len(calls)}

    async def many() -> list[Any]:
        return await asyncio.gather(*(cache.aget("drift", drift) for _ in range(50)))

    assert asyncio.run(many()) == [{"n": 1}] * 50 and calls == [1]


class Ledger:
    errors = (ConnectionError,)
    where = "test"

    def __init__(self) -> None:
        self.looks_read = 0

    def looks(self, experiment_id: str) -> list[dict[str, Any]]:
        self.looks_read += 1
        return []


class Experiment:
    """What Operations reads for /ab-stats and /report, counting the reports built."""

    id = "exp-1"

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.reports = 0

    def report(self) -> tuple[dict[str, Any], list[str], Any]:
        self.reports += 1
        body = {"model_a": {"threshold": 0.5, "n": self.reports},
                "model_b": {"threshold": 0.4}, "experiment": {"salt": "s"}}
        return body, [], None


def test_callers_without_a_key_share_the_cached_report_and_drift() -> None:
    now = [0.0]
    exp = Experiment()
    ops = Operations(ABConfig(), exp, {}, gate_problem=None,  # type: ignore[arg-type]
                     card=ServedCard(None, "none", "test"), clock=lambda: now[0])
    drift_calls = []

    async def drift_report() -> dict[str, Any]:
        drift_calls.append(1)
        return {}

    for _ in range(20):
        public = ops.ab_stats(admin=False, fresh=False)
    assert exp.reports == 1 and "threshold" not in public["model_a"]
    assert ops.ab_stats(admin=True, fresh=True)["model_a"]["n"] == 2  # a key: fresh
    assert ops.ab_stats(admin=False, fresh=False)["model_a"]["n"] == 1

    async def pages() -> None:
        for _ in range(10):
            await ops.report(drift_report, admin=False, fresh=False)
            await ops.drift(drift_report, fresh=False)

    asyncio.run(pages())
    assert (exp.reports, exp.ledger.looks_read, len(drift_calls)) == (2, 1, 1)
    now[0] += ABConfig().guardrails.check_interval_s
    ops.ab_stats(admin=False, fresh=False)
    assert exp.reports == 3

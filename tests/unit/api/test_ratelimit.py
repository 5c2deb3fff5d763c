"""The per-key token bucket: its arithmetic, its settings, and one bucket across processes."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from fraud.api.ratelimit import (
    MemoryStore,
    RateLimiter,
    RatePolicy,
    RateSettings,
    take,
)
from fraud.api.ratestate import SharedFileStore

FROZEN = 1000.0  # a clock that never moves: nothing refills, so counts are exact


def test_take_refills_at_the_rate_up_to_the_burst() -> None:
    s = RateSettings(per_min=60, burst=3)  # one token per second
    bucket, wait = take(None, 10.0, s)
    assert (bucket, wait) == ((2.0, 10.0), 0.0)  # a new key starts with a full bucket
    bucket, _ = take(bucket, 10.0, s)
    bucket, _ = take(bucket, 10.0, s)
    assert bucket == (0.0, 10.0)
    same, wait = take(bucket, 10.25, s)
    assert wait == pytest.approx(0.75) and same[0] == pytest.approx(0.25)
    bucket, wait = take(bucket, 11.0, s)
    assert wait == 0.0 and bucket[0] == pytest.approx(0.0)
    bucket, _ = take((0.0, 0.0), 1e6, s)  # a long idle refills to the burst, no more
    assert bucket[0] == pytest.approx(2.0)
    bucket, _ = take((2.5, 50.0), 40.0, s)  # a clock that went back refills nothing
    assert bucket[0] == pytest.approx(1.5)


def test_settings_defaults_yaml_and_environment() -> None:
    default = RateSettings()
    assert default.enabled and default.per_min == 12_000 and default.capacity == 400
    s = RateSettings.from_mapping({"per_min": 600, "burst": 5})
    assert (s.per_s, s.capacity) == (10.0, 5.0)
    s = RateSettings.from_mapping({"per_min": 600}, {"FRAUDSERVE_RATE_LIMIT_PER_MIN": "30",
                                                     "FRAUDSERVE_RATE_BURST": "2"})
    assert (s.per_min, s.capacity) == (30.0, 2.0)
    assert RateSettings(per_min=6).capacity == 1.0  # at least one request
    assert not RateSettings.from_mapping({}, {"FRAUDSERVE_RATE_LIMIT_PER_MIN": "0"}).enabled


def test_a_cost_takes_several_tokens_at_most_a_full_bucket_and_zero_only_looks() -> None:
    s = RateSettings(per_min=60, burst=10)
    bucket, wait = take(None, 0.0, s, cost=4)
    assert (bucket, wait) == ((6.0, 0.0), 0.0)
    same, wait = take(bucket, 0.0, s, cost=7)
    assert same == bucket and wait == pytest.approx(1.0)  # 1 s for the missing token
    looked, wait = take((0.5, 0.0), 0.0, s, cost=0)
    assert looked == (0.5, 0.0) and wait == pytest.approx(0.5)  # peeks: takes nothing
    assert take((3.0, 0.0), 0.0, s, cost=0) == ((3.0, 0.0), 0.0)
    bucket, wait = take(None, 0.0, s, cost=50)  # more than the bucket: a full one pays
    assert (bucket[0], wait) == (0.0, 0.0)
    limiter = RateLimiter(s, MemoryStore(), lambda: FROZEN)
    assert limiter.peek(b"k") == 0.0 and limiter.check(b"k", cost=10) == 0.0
    assert limiter.peek(b"k") > 0 and limiter.with_settings(s).peek(b"k") > 0  # one store


def test_the_policy_has_three_buckets_from_yaml_and_environment() -> None:
    default = RatePolicy()
    assert (default.anonymous.per_min, default.anonymous.capacity) == (600, 60)
    assert (default.failed_auth.per_min, default.failed_auth.capacity) == (30, 10)
    p = RatePolicy.from_mapping({"per_min": 60, "anonymous_per_min": 0,
                                 "failed_auth_burst": 3},
                                {"FRAUDSERVE_FAILED_AUTH_PER_MIN": "12",
                                 "FRAUDSERVE_ANON_RATE_BURST": "7"})
    assert p.key.per_min == 60 and not p.anonymous.enabled and p.anonymous.capacity == 7
    assert (p.failed_auth.per_min, p.failed_auth.capacity) == (12, 3)
    with pytest.raises(ValueError, match="unknown keys"):
        RatePolicy.from_mapping({"anonymous": 5})


@pytest.mark.parametrize(("data", "words"), [
    ({"per_minute": 5}, "unknown keys ['per_minute']"), ({"per_min": -1}, "per_min"),
    ({"per_min": float("inf")}, "per_min"), ({"burst": 0}, "burst must be >= 1")])
def test_bad_settings_are_refused(data: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        RateSettings.from_mapping(data)


def test_limiter_per_key_and_retry_after() -> None:
    now = [FROZEN]
    limiter = RateLimiter(RateSettings(per_min=120, burst=2), MemoryStore(), lambda: now[0])
    assert [limiter.check(b"a") for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    assert limiter.check(b"b") == 0.0  # another key has its own bucket
    now[0] += 0.5
    assert limiter.check(b"a") == 0.0
    assert limiter.check(b"a") == pytest.approx(0.5)


def test_off_means_never_limited() -> None:
    limiter = RateLimiter(RateSettings(per_min=0), MemoryStore(), lambda: FROZEN)
    assert all(limiter.check(b"a") == 0.0 for _ in range(1000))


@pytest.mark.parametrize("store", ["memory", "file"])
def test_threads_share_one_bucket_exactly(store: str, tmp_path: Path) -> None:
    backend = MemoryStore() if store == "memory" else SharedFileStore(tmp_path / "rate")
    limiter = RateLimiter(RateSettings(per_min=60, burst=50), backend, lambda: FROZEN)
    allowed: list[int] = []

    def hammer() -> None:
        allowed.append(sum(limiter.check(b"k") == 0.0 for _ in range(40)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50  # 320 attempts, exactly the burst got through


def _worker(path: str, attempts: int, out: multiprocessing.Queue) -> None:
    limiter = RateLimiter(RateSettings(per_min=60, burst=30), SharedFileStore(Path(path)),
                          lambda: FROZEN)
    out.put(sum(limiter.check(b"shared-key") == 0.0 for _ in range(attempts)))


def test_worker_processes_share_one_bucket(tmp_path: Path) -> None:
    """Two API workers are two processes: together they get the burst once, not twice."""
    path = tmp_path / "rate"
    parent = RateLimiter(RateSettings(per_min=60, burst=30), SharedFileStore(path),
                         lambda: FROZEN)
    assert parent.check(b"shared-key") == 0.0  # opened here before the fork: children reopen
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), 25, out)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(got) == 29, got  # 75 attempts in 3 processes after the parent's 1: 30 in all


def test_the_file_never_holds_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "rate"
    RateLimiter(RateSettings(), SharedFileStore(path), lambda: FROZEN).check(b"my-secret-key")
    assert b"my-secret-key" not in path.read_bytes()


def test_a_full_table_evicts_the_least_recently_used_key(tmp_path: Path) -> None:
    now = [0.0]
    limiter = RateLimiter(RateSettings(per_min=0.6, burst=1),  # no refill within the test
                          SharedFileStore(tmp_path / "rate", slots=2), lambda: now[0])
    assert limiter.check(b"a") == 0.0
    now[0] = 1.0
    assert limiter.check(b"b") == 0.0
    now[0] = 2.0
    assert limiter.check(b"c") == 0.0  # takes a's slot (the oldest)
    assert limiter.check(b"b") > 0  # b kept its (empty) bucket
    assert limiter.check(b"c") > 0

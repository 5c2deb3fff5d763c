"""Token buckets (per API key; per client address for anonymous traffic and for failed
authentications), shared by every worker process of a replica.

Each API worker is its own process, so buckets kept in one worker's memory would let a key
through once per worker (2 workers: twice the limit). `SharedFileStore`
(fraud/api/ratestate.py) keeps the buckets in a small memory-mapped file, in a private
directory, that all workers of one `bentoml serve` open. Across replicas, limit at the
ingress (docs: README "Security"). `MemoryStore` is the same contract in one process. A
bucket read back that makes no sense (a count below zero or not a number, a time in the
future) starts full again rather than locking its key out.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fraud.api.ratestate import Bucket, SharedFileStore

RATE_ENV = "FRAUDSERVE_RATE_LIMIT_PER_MIN"
BURST_ENV = "FRAUDSERVE_RATE_BURST"
ANON_RATE_ENV = "FRAUDSERVE_ANON_RATE_PER_MIN"  # and FRAUDSERVE_ANON_RATE_BURST
FAILED_AUTH_ENV = "FRAUDSERVE_FAILED_AUTH_PER_MIN"  # and FRAUDSERVE_FAILED_AUTH_BURST
FUTURE_S = 60.0  # a stamp this far past now is garbage (all workers share one clock)


@dataclass(frozen=True)
class RateSettings:
    """The per-key limit. `per_min` 0 turns it off; `burst` None is 2 s worth of the rate."""

    per_min: float = 12_000.0
    burst: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_min) and self.per_min >= 0):
            raise ValueError(f"rate limit per_min must be a finite number >= 0 "
                             f"(got {self.per_min!r})")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"rate limit burst must be >= 1 (got {self.burst!r})")

    @property
    def enabled(self) -> bool:
        return self.per_min > 0

    @property
    def per_s(self) -> float:
        return self.per_min / 60.0

    @property
    def capacity(self) -> float:
        return float(self.burst) if self.burst is not None else max(1.0, 2.0 * self.per_s)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> RateSettings:
        """From the YAML section (`per_min`, `burst`), then the environment overrides."""
        values = dict(data or {})
        unknown = set(values) - {"per_min", "burst"}
        if unknown:
            raise ValueError(f"rate_limit: unknown keys {sorted(unknown)}")
        env = environ or {}
        if env.get(RATE_ENV):
            values["per_min"] = float(env[RATE_ENV])
        if env.get(BURST_ENV):
            values["burst"] = int(env[BURST_ENV])
        return cls(**values)


@dataclass(frozen=True)
class RatePolicy:
    """Every bucket's settings: per key, per client address without a key (`anonymous`), and
    per client address for failed authentications (`failed_auth`)."""

    key: RateSettings = RateSettings()
    anonymous: RateSettings = RateSettings(per_min=600.0, burst=60)
    failed_auth: RateSettings = RateSettings(per_min=30.0, burst=10)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> RatePolicy:
        """From configs/ab.yaml's `rate_limit:` (per_min, burst, anonymous_per_min,
        anonymous_burst, failed_auth_per_min, failed_auth_burst), then the environment."""
        values, env = dict(data or {}), environ or {}
        out: dict[str, RateSettings] = {}
        for name, prefix, var in (("anonymous", "anonymous_", ANON_RATE_ENV),
                                  ("failed_auth", "failed_auth_", FAILED_AUTH_ENV)):
            default: RateSettings = getattr(cls, name)
            mine = {"per_min": values.pop(f"{prefix}per_min", default.per_min),
                    "burst": values.pop(f"{prefix}burst", default.burst)}
            if env.get(var):
                mine["per_min"] = float(env[var])
            burst_var = var.replace("_PER_MIN", "_BURST")
            if env.get(burst_var):
                mine["burst"] = int(env[burst_var])
            out[name] = RateSettings(**mine)
        return cls(key=RateSettings.from_mapping(values, env), **out)


def sane(bucket: Bucket, now: float, settings: RateSettings) -> bool:
    """Whether a stored bucket could have come from take(): finite, 0..capacity tokens, a
    stamp not far in the future."""
    tokens, stamp = bucket
    return (math.isfinite(tokens) and math.isfinite(stamp)
            and 0.0 <= tokens <= settings.capacity and stamp <= now + FUTURE_S)


def take(bucket: Bucket | None, now: float, settings: RateSettings,
         cost: float = 1.0) -> tuple[Bucket, float]:
    """Refill `bucket` to `now` and take `cost` tokens (at most a full bucket; 0 takes none
    and only asks whether one is there): (new bucket, 0 or seconds to wait)."""
    if bucket is not None and not sane(bucket, now, settings):
        bucket = None  # written by something other than take(): start full, never lock out
    tokens, stamp = bucket if bucket is not None else (settings.capacity, now)
    elapsed = max(0.0, now - stamp)  # a clock that went back refills nothing
    tokens = min(settings.capacity, tokens + elapsed * settings.per_s)
    need = min(max(cost, 1.0), settings.capacity)
    if tokens >= need:
        return (tokens - min(cost, settings.capacity), now), 0.0
    return (tokens, now), (need - tokens) / settings.per_s


class Store(Protocol):
    def transact(self, ident: int, fn: Callable[[Bucket | None], tuple[Bucket, float]]
                 ) -> float: ...


class MemoryStore:
    """Buckets in this process's memory (tests, single-process use)."""

    def __init__(self) -> None:
        self._buckets: dict[int, Bucket] = {}
        self._lock = threading.Lock()

    def transact(self, ident: int, fn: Callable[[Bucket | None], tuple[Bucket, float]]
                 ) -> float:
        with self._lock:
            self._buckets[ident], wait = fn(self._buckets.get(ident))
            return wait


def key_id(name: bytes) -> int:
    """A non-zero 64-bit id for a key: its hash, so no secret is ever written to the file."""
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "little") or 1


class RateLimiter:
    """One bucket per key; `check` answers 0 (go ahead) or the seconds to wait. Limiters with
    other settings may share a store: their keys carry their own prefix (`key_id`)."""

    def __init__(self, settings: RateSettings, store: Store | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store: Store = store if store is not None else SharedFileStore()
        self.clock = clock

    def check(self, key: bytes, cost: float = 1.0) -> float:
        """Take `cost` tokens from `key`'s bucket (0: take none, only look)."""
        if not self.settings.enabled:
            return 0.0
        now = self.clock()
        return self.store.transact(key_id(key), lambda b: take(b, now, self.settings, cost))

    def peek(self, key: bytes) -> float:
        """0 when `key`'s bucket holds a token, else the seconds until it will (takes none)."""
        return self.check(key, cost=0.0)

    def with_settings(self, settings: RateSettings) -> RateLimiter:
        """Another limiter on the same store and clock."""
        return RateLimiter(settings, self.store, self.clock)

"""Answers computed at most once per interval in one API worker, whoever asks.

The open routes that build the experiment's report (/ab-stats, /report) or ask the router
(/drift, /report) serve callers without a key from here: however many of them arrive, one
computation per `ttl_s` runs (the others wait for it, then share it). A failure is kept for
the interval too, so a ledger that is down is not asked again by every caller.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    at: float
    value: Any = None
    error: BaseException | None = None


class Cache:
    """Named values, each recomputed at most once per `ttl_s` (sync and async callers)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.clock = ttl_s, clock
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._async_locks: dict[str, asyncio.Lock] = {}
        self.computed = 0  # how many computations ran (tests, benchmarks)

    def _hit(self, name: str) -> _Entry | None:
        entry = self._entries.get(name)
        if entry is not None and self.clock() - entry.at < self.ttl_s:
            return entry
        return None

    @staticmethod
    def _unwrap(entry: _Entry) -> Any:
        if entry.error is not None:
            raise entry.error
        return entry.value

    def _keep(self, name: str, value: Any = None, error: BaseException | None = None) -> None:
        self.computed += 1
        self._entries[name] = _Entry(self.clock(), value, error)

    def get(self, name: str, compute: Callable[[], T]) -> T:
        """The cached value of `name`, computing it (once, across threads) when stale."""
        hit = self._hit(name)
        if hit is not None:
            return self._unwrap(hit)  # type: ignore[no-any-return]
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            hit = self._hit(name)
            if hit is None:
                try:
                    self._keep(name, compute())
                except Exception as exc:
                    self._keep(name, error=exc)
                hit = self._entries[name]
        return self._unwrap(hit)  # type: ignore[no-any-return]

    async def aget(self, name: str, compute: Callable[[], Awaitable[T]]) -> T:
        """`get` for a coroutine, in this worker's event loop."""
        hit = self._hit(name)
        if hit is not None:
            return self._unwrap(hit)  # type: ignore[no-any-return]
        lock = self._async_locks.setdefault(name, asyncio.Lock())
        async with lock:
            hit = self._hit(name)
            if hit is None:
                try:
                    self._keep(name, await compute())
                except Exception as exc:
                    self._keep(name, error=exc)
                hit = self._entries[name]
        return self._unwrap(hit)  # type: ignore[no-any-return]

"""The bench's load generators: closed and open loop over aiohttp, and the bodies they send.

Closed loop: `clients` loops, each sends its next request when the last one answered (the
peak). Open loop: requests fired on a fixed schedule whatever the answers do, latency counted
from the *scheduled* send time, so a stalled server cannot hide its queue (no coordinated
omission); `lags` records how late the client itself fired (its own health).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadtests.samples import load_samples, user_ids

JSON_HEADERS = {"Content-Type": "application/json"}
CLIENT_TIMEOUT_S = 30.0  # the service's own traffic timeout


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation) or None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def schedule(rate: float, duration: float) -> list[float]:
    """Open-loop send offsets (s from start): a fixed interval, whatever the answers do."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    return [i / rate for i in range(max(1, round(rate * duration)))]


@dataclass
class LoadResult:
    """Latencies (s) and outcomes collected by a load generator."""

    latencies: list[float] = field(default_factory=list)  # of successful requests
    lags: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    elapsed: float = 0.0


async def _post(session: Any, url: str, body: bytes,
                headers: Mapping[str, str] = JSON_HEADERS) -> str | None:
    """POST; None on a 2xx answer, else a short failure label."""
    import aiohttp

    try:
        async with session.post(url, data=body, headers=dict(headers)) as resp:
            await resp.read()
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


def _session(limit: int) -> Any:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S))


async def _clients(session: Any, url: str, bodies: Sequence[bytes], clients: int,
                   end: float, raw: LoadResult) -> None:
    """`clients` loops on `url` until `end` (loop time), each sending when its last answered."""
    loop = asyncio.get_running_loop()

    async def client(index: int) -> None:
        i = index
        while loop.time() < end:
            sent = loop.time()
            failure = await _post(session, url, bodies[i % len(bodies)])
            if failure:
                raw.failures[failure] += 1
            else:
                raw.latencies.append(loop.time() - sent)
                raw.ok += 1
            i += clients

    await asyncio.gather(*(client(i) for i in range(clients)))


async def closed_loop(url: str, bodies: Sequence[bytes], clients: int,
                      duration: float) -> LoadResult:
    """`clients` loops that each send the next request as soon as the last one answered."""
    raw = LoadResult()
    loop = asyncio.get_running_loop()
    async with _session(clients) as session:
        start = loop.time()
        await _clients(session, url, bodies, clients, start + duration, raw)
        raw.elapsed = loop.time() - start
    return raw


async def mixed_loop(bulk: tuple[str, Sequence[bytes], int],
                     single: tuple[str, Sequence[bytes], int],
                     duration: float) -> tuple[LoadResult, LoadResult]:
    """Two closed loops at once, each (url, bodies, clients): bulk and single requests
    against the same service for the same `duration`; each side's outcomes apart."""
    raws = LoadResult(), LoadResult()
    loop = asyncio.get_running_loop()
    async with _session(bulk[2] + single[2]) as session:
        start = loop.time()
        end = start + duration
        await asyncio.gather(*(_clients(session, url, bodies, clients, end, raw)
                               for (url, bodies, clients), raw in zip((bulk, single), raws,
                                                                      strict=True)))
        for raw in raws:
            raw.elapsed = loop.time() - start
    return raws


async def open_loop(url: str, bodies: Sequence[bytes], rate: float, duration: float,
                    max_connections: int = 512,
                    headers: Mapping[str, str] = JSON_HEADERS) -> LoadResult:
    """Fire requests on a fixed schedule regardless of answers; latency from scheduled time."""
    raw = LoadResult()
    loop = asyncio.get_running_loop()
    offsets = schedule(rate, duration)
    async with _session(max_connections) as session:
        start = loop.time() + 0.05
        pending: set[asyncio.Task[None]] = set()

        async def fire(i: int, due: float) -> None:
            raw.lags.append(loop.time() - due)
            failure = await _post(session, url, bodies[i % len(bodies)], headers)
            if failure:
                raw.failures[failure] += 1
            else:  # from the scheduled time: includes any client-side queueing
                raw.latencies.append(loop.time() - due)
                raw.ok += 1

        for i, offset in enumerate(offsets):
            due = start + offset
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(fire(i, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        raw.elapsed = max(loop.time() - start, offsets[-1] + 1 / rate)
    return raw


def predict_bodies(n: int = 2_000, seed: int = 1) -> list[bytes]:
    """Pre-encoded /predict bodies: held-out rows (3% suspicious) for the stable user ids."""
    rng = random.Random(seed)
    samples, users = load_samples(), user_ids()
    return [json.dumps(samples.pick(rng, rng.random() < 0.03).body(rng.choice(users))).encode()
            for _ in range(n)]


def batch_bodies(rows: int, n: int = 16, seed: int = 2) -> list[bytes]:
    """Pre-encoded /predict_batch bodies of `rows` transactions each (3% suspicious)."""
    rng = random.Random(seed)
    samples, users = load_samples(), user_ids()
    return [json.dumps({"transactions": [
        samples.pick(rng, rng.random() < 0.03).body(rng.choice(users)) for _ in range(rows)]}
    ).encode() for _ in range(n)]

"""A tiny client for the service tests: one fresh connection per call (so the kernel spreads
calls over the API workers, and BentoML's access log names each call's client port), readers of
the server's state (/ab-stats, /health, /metrics), the server log's worker per answer, users per
arm, and the checks every prediction must pass."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest
from helpers import Server
from prometheus_client.parser import text_string_to_metric_families

from fraud.assignment import assign
from fraud.config import load_ab_config
from fraud.schema import ARMS

AB = load_ab_config()
TIMEOUT = 15.0  # a 4xx/5xx that takes longer than this is a hang, not an answer
T = TypeVar("T")


# -- a tiny client: one fresh connection per call, so the kernel spreads calls over workers -----


@dataclass
class Answer:
    status: int
    text: str
    port: int  # the client port: the access log names it, so we know the worker

    @property
    def body(self) -> Any:
        return json.loads(self.text)


def call(server: Server, method: str, path: str, body: Any = None, *, raw: str | None = None,
         headers: dict[str, str] | None = None, timeout: float = TIMEOUT) -> Answer:
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.connect()
        port = conn.sock.getsockname()[1]
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        hdrs = {"Connection": "close", **({"Content-Type": "application/json"} if data else {}),
                **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read().decode(errors="replace"), port)
    except TimeoutError:
        pytest.fail(f"{method} {path} did not answer within {timeout} s (a hang, not an "
                    f"answer); body sent: {(raw or json.dumps(body))[:300]}", pytrace=False)
    finally:
        conn.close()


def post(server: Server, path: str, body: Any = None, **kw: Any) -> Answer:
    return call(server, "POST", path, body, **kw)


def get(server: Server, path: str, **kw: Any) -> Answer:
    return call(server, "GET", path, **kw)


def predict(server: Server, txn: dict[str, Any]) -> Answer:
    answer = post(server, "/predict", txn)
    assert answer.status == 200, f"/predict {txn} -> {answer.status} {answer.text[:500]}"
    return answer


def concurrently(fn: Callable[[Any], T], items: Iterable[Any], threads: int) -> list[T]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def wait_for(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float = 5.0,
             interval: float = 0.2) -> T:
    """Poll fn() until ok(value) or the timeout; returns the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- server state --------------------------------------------------------------------------------


def ab_stats(server: Server) -> dict[str, Any]:
    answer = get(server, "/ab-stats")
    assert answer.status == 200, answer.text[:500]
    return answer.body


def settled_stats(server: Server) -> dict[str, Any]:
    """/ab-stats once every worker's ledger queue is written (two equal reads 0.3 s apart)."""
    last = ab_stats(server)
    for _ in range(20):
        time.sleep(0.3)
        now = ab_stats(server)
        if counts(now) == counts(last) and now["experiment"] == last["experiment"]:
            return now
        last = now
    return last


def health_tags(server: Server) -> dict[str, str]:
    answer = get(server, "/health")
    assert answer.status == 200, answer.text[:500]
    return answer.body["models"]


def metric_samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics keyed by (sample name, sorted labels)."""
    answer = get(server, "/metrics")
    assert answer.status == 200, answer.text[:300]
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric_sum(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items()
               if n == name and all(dict(lab).get(k) == w for k, w in labels.items()))


def counts(stats: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {arm: (stats[arm]["total_predictions"], stats[arm]["fraud_count"]) for arm in ARMS}


def assert_not_rolled_back(server: Server) -> None:
    exp = ab_stats(server)["experiment"]
    assert not exp["rolled_back"], (
        f"the challenger was rolled back before this test: {exp['rollback_reason']}; "
        "the routing checks below need the configured split")


# -- the server log ------------------------------------------------------------------------------

ACCESS_LINE = re.compile(r"\[entry_service:FraudDetection:(\d+)\] 127\.0\.0\.1:(\d+) "
                         r"\(scheme=http,method=\w+,path=([^,]+),")


class LogWatch:
    """The part of the server log written after this object was made."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.offset = server.log.stat().st_size

    def text(self) -> str:
        with open(self.server.log, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def workers(self, answers: list[Answer], path: str) -> dict[int, int]:
        """Client port -> worker index of each answer, from the access log."""
        ports = {a.port for a in answers}

        def seen() -> dict[int, int]:
            found = {}
            for worker, port, p in ACCESS_LINE.findall(self.text()):
                if p == path and int(port) in ports:
                    found[int(port)] = int(worker)
            return found

        found = wait_for(seen, lambda f: set(f) == ports, timeout=5)
        assert set(found) == ports, (
            f"{len(ports - set(found))} of {len(ports)} {path} requests have no access-log "
            f"line naming their client port in {self.server.log}")
        return found


def all_workers(found: dict[int, int]) -> set[int]:
    return set(found.values())


# -- users and answers -------------------------------------------------------------------------


def user_ids(prefix: str, per_arm: int, share: float = AB.challenger_share) -> dict[str, list[str]]:
    """`per_arm` user ids per arm under `share` (so the traffic is balanced)."""
    out: dict[str, list[str]] = {arm: [] for arm in ARMS}
    i = 0
    while min(len(v) for v in out.values()) < per_arm:
        uid = f"{prefix}-{i}"
        arm = assign(uid, AB.salt, share)
        if len(out[arm]) < per_arm:
            out[arm].append(uid)
        i += 1
    return out


def check_prediction(p: dict[str, Any], tags: dict[str, str]) -> None:
    assert set(p) == {"request_id", "is_fraud", "fraud_probability", "model_version",
                      "model_tag", "latency_ms", "timestamp"}, p
    assert isinstance(p["request_id"], str) and re.fullmatch(r"[0-9a-f]{32}", p["request_id"]), p
    assert isinstance(p["is_fraud"], bool), p
    assert isinstance(p["fraud_probability"], float), p
    assert 0.0 <= p["fraud_probability"] <= 1.0, p
    assert p["model_version"] in ARMS, p
    assert p["model_tag"] == tags[p["model_version"]], (p, tags)
    assert isinstance(p["latency_ms"], int | float) and p["latency_ms"] >= 0, p
    assert p["timestamp"].endswith("Z"), p
    stamp = datetime.fromisoformat(p["timestamp"])
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0, p
    assert abs(time.time() - stamp.timestamp()) < 600, p

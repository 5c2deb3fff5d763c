"""Restart persistence with its own servers: decisions, labels and a guardrail rollback survive.

One ledger (FRAUDSERVE_LEDGER in a module workdir) and one A/B config override
(FRAUDSERVE_AB_CONFIG: configs/ab.yaml with a p95 latency limit no decision can meet,
min_decisions 20, check every second). The first server scores and labels some decisions,
then gets enough traffic for the guardrail to roll the challenger back; it is stopped and a
second server is started on the same ledger and config.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest
import yaml
from helpers import ROOT, Server, Store, serve
from prometheus_client.parser import text_string_to_metric_families

from fraud.assignment import assign
from fraud.schema import ARMS, EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service]

TIMEOUT = 15.0
NORMAL = {"amount": 12.5, "hour": 14, "merchant_risk": 0.1, "card_age_days": 900,
          "distance_km": 3, "num_recent_txns": 1, "is_international": 0}
T = TypeVar("T")


def call(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(text)
    except json.JSONDecodeError:
        return resp.status, text


def ok(server: Server, method: str, path: str, body: Any = None) -> Any:
    status, answer = call(server, method, path, body)
    assert status == 200, f"{method} {path} {body} -> {status} {str(answer)[:400]}"
    return answer


def wait_for(fn: Callable[[], T], good: Callable[[T], bool], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if good(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def gauge(server: Server, name: str) -> float | None:
    status, text = call(server, "GET", "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                return s.value
    return None


def snapshot(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("total_predictions", "fraud_count", "legit_count", "labelled", "tp", "fp", "fn",
            "tn", "model_tag")
    return {arm: {k: stats[arm][k] for k in keys} for arm in ARMS}


def users(prefix: str, per_arm: int, salt: str, share: float) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {arm: [] for arm in ARMS}
    i = 0
    while min(map(len, out.values())) < per_arm:
        uid = f"{prefix}-{i}"
        arm = assign(uid, salt, share)
        if len(out[arm]) < per_arm:
            out[arm].append(uid)
        i += 1
    return out


@pytest.fixture(scope="module")
def setup(trained_store: Store, gate_report: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("restart")
    cfg = yaml.safe_load((ROOT / "configs" / "ab.yaml").read_text())
    # Only the latency guardrail can trip: any p95 beats 0.001 ms (ratio 0: absolute only).
    cfg["guardrails"].update(enabled=True, min_decisions=20, max_p95_latency_ms=0.001,
                             latency_ratio=0.0, flag_rate_ratio=1000.0,
                             rollback_on_srm=False, check_interval_s=1)
    ab_path = workdir / "ab.yaml"
    ab_path.write_text(yaml.safe_dump(cfg))
    env = {"FRAUDSERVE_GATE_REPORT": str(gate_report), "FRAUDSERVE_AB_CONFIG": str(ab_path)}
    return {"store": trained_store, "workdir": workdir, "env": env, "cfg": cfg}


@pytest.fixture(scope="module")
def first_run(setup: dict[str, Any]) -> dict[str, Any]:
    """Score, label, breach the latency guardrail; return what the first server answered."""
    cfg = setup["cfg"]
    salt, share = cfg["salt"], cfg["challenger_share"]
    with serve(setup["store"], setup["workdir"], **setup["env"]) as server:
        assert ok(server, "GET", "/ab-stats")["experiment"]["rolled_back"] is False
        # Decisions and labels, while the challenger still serves (fewer than min_decisions).
        who = users("restart", 4, salt, share)
        decisions = []
        for arm in ARMS:
            for i, uid in enumerate(who[arm]):
                body = {**(EXAMPLE_TRANSACTION if i % 2 else NORMAL), "user_id": uid}
                decisions.append(ok(server, "POST", "/predict", body))
        assert {d["model_version"] for d in decisions} == set(ARMS)
        labelled = {decisions[0]["request_id"]: True, decisions[-1]["request_id"]: False}
        for rid, label in labelled.items():
            answer = ok(server, "POST", "/feedback", {"request_id": rid, "is_fraud": label})
            assert answer["status"] == "created"

        # Single predictions past min_decisions per arm (the latency guardrail judges single
        # /predict calls): the impossible p95 limit must roll B back.
        traffic = users("breach", 25, salt, share)
        rows = [{**NORMAL, "user_id": uid} for arm in ARMS for uid in traffic[arm]]
        more = [ok(server, "POST", "/predict", row) for row in rows]
        sent = len(decisions) + len(more)
        stats = wait_for(lambda: ok(server, "GET", "/ab-stats"),
                         lambda s: s["experiment"]["rolled_back"], timeout=15)
        rollback_active = wait_for(lambda: gauge(server, "fraud_ab_rollback_active"),
                                   lambda v: v == 1.0, timeout=10)
        stats = wait_for(lambda: ok(server, "GET", "/ab-stats"),
                         lambda s: sum(s[a]["total_predictions"] for a in ARMS) >= sent, 5)
        log = server.logs()
    return {"decisions": decisions, "labelled": labelled, "sent": sent, "stats": stats,
            "rollback_active": rollback_active, "log": log}


@pytest.fixture(scope="module")
def restarted(setup: dict[str, Any], first_run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with serve(setup["store"], setup["workdir"], **setup["env"]) as server:
        yield {"server": server, "stats": ok(server, "GET", "/ab-stats"), "first": first_run}


def test_latency_guardrail_rolls_the_challenger_back(first_run: dict[str, Any]) -> None:
    exp = first_run["stats"]["experiment"]
    assert exp["rolled_back"] is True, exp
    assert "latency" in exp["rollback_reason"], exp
    assert "slower than 0.001 ms" in exp["rollback_reason"], exp
    assert exp["effective_share"] == 0.0
    assert exp["rolled_back_at"]
    assert first_run["rollback_active"] == 1.0, (
        f"fraud_ab_rollback_active is {first_run['rollback_active']} after the rollback")
    assert "challenger rolled back: challenger p95 latency" in first_run["log"]


def test_decisions_and_labels_survive_a_restart(restarted: dict[str, Any]) -> None:
    first = restarted["first"]
    before, after = snapshot(first["stats"]), snapshot(restarted["stats"])
    assert sum(before[a]["total_predictions"] for a in ARMS) == first["sent"]
    assert after == before
    assert sum(after[a]["labelled"] for a in ARMS) == 2
    # The stored labels still decide what a repeated label gets: duplicate, not created.
    server = restarted["server"]
    for rid, label in first["labelled"].items():
        answer = ok(server, "POST", "/feedback", {"request_id": rid, "is_fraud": label})
        assert answer == {"request_id": rid, "is_fraud": label, "status": "duplicate"}
    # A decision from before the restart can still be labelled.
    rid = first["decisions"][1]["request_id"]
    assert ok(server, "POST", "/feedback", {"request_id": rid, "is_fraud": True})[
        "status"] == "created"


def test_rollback_survives_a_restart(setup: dict[str, Any],
                                     restarted: dict[str, Any]) -> None:
    server, first = restarted["server"], restarted["first"]
    exp, old = restarted["stats"]["experiment"], first["stats"]["experiment"]
    assert exp["rolled_back"] is True, exp
    assert exp["rollback_reason"] == old["rollback_reason"]
    assert exp["rolled_back_at"] == old["rolled_back_at"]
    assert exp["effective_share"] == 0.0
    # New users, half of whom the configured share sends to model_b: all get model_a.
    cfg = setup["cfg"]
    who = users("after-restart", 10, cfg["salt"], cfg["challenger_share"])
    arms = {ok(server, "POST", "/predict", {**NORMAL, "user_id": uid})["model_version"]
            for arm in ARMS for uid in who[arm]}
    assert arms == {"model_a"}
    value = wait_for(lambda: gauge(server, "fraud_ab_rollback_active"), lambda v: v == 1.0,
                     timeout=10)
    assert value == 1.0, f"fraud_ab_rollback_active is {value} after the restart"

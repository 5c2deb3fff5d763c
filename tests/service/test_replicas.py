"""Two replicas on one PostgreSQL ledger: two real `bentoml serve` processes (different ports,
one API worker each) and a real PostgreSQL server.

After concurrent traffic to both, /ab-stats totals are identical on both and exact; a label
for a decision made on one replica is accepted by the other; a rollback, a resume and a share
change made on one are obeyed by the other within a few seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import Server, Store, serve

from fraud.assignment import assign
from fraud.config import load_ab_config
from fraud.schema import EXAMPLE_TRANSACTION
from fraud.store.migrate import migrate

pytestmark = [pytest.mark.service, pytest.mark.postgres, pytest.mark.slow]

# Every scope: these tests are about replicas, test_api_keys about scopes.
KEY = "replica-key-Hs4Qw9Zt2Lm7Xc5Vb8Np"
AUTH = {"Authorization": f"Bearer {KEY}"}
OBEY_WITHIN = 5.0  # seconds: each replica refreshes the shared state every second


@pytest.fixture(scope="module")
def replicas(trained_store: Store, gate_report: Path, postgres: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    ledger = postgres.create_database()
    migrate(ledger)  # PostgreSQL workers never run DDL: the migrator goes first, as in a deploy
    env = {"FRAUDSERVE_GATE_REPORT": str(gate_report), "FRAUDSERVE_LEDGER": ledger,
           "FRAUDSERVE_RATE_LIMIT_PER_MIN": "0",
           "FRAUDSERVE_API_KEYS": f"score+label+admin:{KEY}"}
    with serve(trained_store, tmp_path_factory.mktemp("one"), workers=1, **env) as one, \
            serve(trained_store, tmp_path_factory.mktemp("two"), workers=1, **env) as two:
        yield one, two


def post(server: Server, path: str, body: Any) -> Any:
    resp = requests.post(f"{server.url}{path}", json=body, headers=AUTH, timeout=15)
    assert resp.status_code == 200, f"{path} -> {resp.status_code} {resp.text[:300]}"
    return resp.json()


def stats(server: Server) -> dict[str, Any]:
    resp = requests.get(f"{server.url}/ab-stats", headers=AUTH, timeout=15)
    assert resp.status_code == 200, resp.text[:300]
    return resp.json()


def eventually(check: Callable[[], bool], timeout: float = OBEY_WITHIN) -> float:
    """Seconds until `check()` held (fails after `timeout`)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "not obeyed in time"
        time.sleep(0.1)
    return time.monotonic() - start


def test_concurrent_traffic_totals_are_identical_and_exact(
        replicas: tuple[Server, Server]) -> None:
    one, two = replicas
    before = {arm: stats(one)[arm]["total_predictions"] for arm in ("model_a", "model_b")}

    def score(i: int) -> str:
        server = (one, two)[i % 2]
        body = {**EXAMPLE_TRANSACTION, "user_id": f"replica-user-{i % 97}"}
        return post(server, "/predict", body)["model_version"]

    with ThreadPoolExecutor(8) as pool:
        served = Counter(pool.map(score, range(400)))
    batch = [{**EXAMPLE_TRANSACTION, "user_id": f"replica-batch-{i}"} for i in range(50)]
    served.update(r["model_version"] for r in post(two, "/predict_batch",
                                                   {"transactions": batch})["results"])
    seen = stats(one), stats(two)
    for arm in ("model_a", "model_b"):
        totals = [s[arm]["total_predictions"] - before[arm] for s in seen]
        assert totals == [served[arm], served[arm]], (arm, totals, served)
    assert sum(served.values()) == 450 and served["model_b"] > 0


def test_a_label_is_accepted_by_the_other_replica(replicas: tuple[Server, Server]) -> None:
    one, two = replicas
    decided = post(one, "/predict", {**EXAMPLE_TRANSACTION, "user_id": "labelled-elsewhere"})
    rid = decided["request_id"]
    assert post(two, "/feedback", {"request_id": rid, "is_fraud": True})["status"] == "created"
    assert post(one, "/feedback", {"request_id": rid, "is_fraud": True})["status"] == "duplicate"
    resp = requests.post(f"{one.url}/feedback", json={"request_id": rid, "is_fraud": False},
                         headers=AUTH, timeout=15)
    assert resp.status_code == 409


def test_rollback_resume_and_share_are_obeyed_by_the_other(
        replicas: tuple[Server, Server]) -> None:
    one, two = replicas
    salt = load_ab_config().salt
    share = stats(one)["experiment"]["configured_share"]
    challenger = next(u for u in (f"challenger-{i}" for i in range(10_000))
                      if assign(u, salt, share) == "model_b")
    body = {**EXAMPLE_TRANSACTION, "user_id": challenger}
    assert post(two, "/predict", body)["model_version"] == "model_b"

    post(one, "/admin/rollback", None)
    took = eventually(lambda: stats(two)["experiment"]["rolled_back"])
    assert post(two, "/predict", body)["model_version"] == "model_a", took

    post(two, "/admin/resume", None)
    eventually(lambda: not stats(one)["experiment"]["rolled_back"])
    assert post(one, "/predict", body)["model_version"] == "model_b"

    post(two, "/admin/share", {"challenger_share": 0.0})
    eventually(lambda: stats(one)["experiment"]["effective_share"] == 0.0)
    assert post(one, "/predict", body)["model_version"] == "model_a"

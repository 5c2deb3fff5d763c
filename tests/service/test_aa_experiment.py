"""A/A on a real `bentoml serve`: the same model on both arms must never raise an alarm.

What a new user tried when this was filed: FRAUDSERVE_MODEL_A = FRAUDSERVE_MODEL_B, 50 users
at equal rates, labels fed back; after ~1,900 decisions the decision-level sample-ratio check
called 27 of 50 users on one side a mismatch and rolled the challenger back. Here a few dozen
users send traffic at equal rates with every label fed back, /ab-stats is read every couple
of seconds while the guardrail loop runs, and nothing may fire: no rollback, no mismatch, no
better/worse verdict.
"""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import Server, Store, serve

from fraud.config import GeneratorConfig, load_ab_config
from fraud.schema import FEATURE_NAMES
from training.data import generate

pytestmark = [pytest.mark.service]

USERS = 40
ROUNDS = 45  # transactions per user
AB = load_ab_config()


def call(server: Server, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def transactions() -> list[tuple[dict[str, Any], bool]]:
    """(transaction, true label) for every user and round, users interleaved (equal rates)."""
    df = generate(GeneratorConfig(n_rows=USERS * ROUNDS, fraud_rate=0.1), seed=21)
    ints = {"hour", "num_recent_txns", "is_international"}
    rows = []
    for i, row in enumerate(df[[*FEATURE_NAMES, "is_fraud"]].itertuples(index=False)):
        features = {k: int(v) if k in ints else float(v)
                    for k, v in zip(FEATURE_NAMES, row[:-1], strict=True)}
        rows.append(({"user_id": f"aa-{i % USERS}", **features}, bool(row[-1])))
    return rows


@pytest.fixture(scope="module")
def aa_server(trained_store: Store, gate_report: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("aa")
    with serve(trained_store, workdir, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_MODEL_A="@champion", FRAUDSERVE_MODEL_B="@champion") as srv:
        yield srv


def test_same_model_on_both_arms_raises_no_alarm(aa_server: Server) -> None:
    status, stats = call(aa_server, "/ab-stats")
    assert status == 200
    assert stats["model_a"]["model_tag"] == stats["model_b"]["model_tag"]
    work = transactions()
    reads: list[dict[str, Any]] = []

    def one(item: tuple[dict[str, Any], bool]) -> str:
        txn, label = item
        status, body = call(aa_server, "/predict", txn)
        assert status == 200, body
        status, fb = call(aa_server, "/feedback", {"request_id": body["request_id"],
                                                    "is_fraud": label})
        assert status == 200, fb
        return body["model_version"]

    arms: list[str] = []
    with ThreadPoolExecutor(4) as pool:
        for start in range(0, len(work), USERS * 5):  # five rounds, then a read
            arms += pool.map(one, work[start:start + USERS * 5])
            status, stats = call(aa_server, "/ab-stats")
            assert status == 200, stats
            reads.append(stats)
    time.sleep(AB.guardrails.check_interval_s * 2)  # let the guardrail loop look at it all
    status, stats = call(aa_server, "/ab-stats")
    reads.append(stats)

    users_b = len({t["user_id"] for (t, _), arm in zip(work, arms, strict=True)
                   if arm == "model_b"})
    for i, s in enumerate(reads):
        exp, srm, primary = s["experiment"], s["sample_ratio"], s["primary"]
        where = f"read {i}: users on B {users_b}/{USERS}, {exp}, {srm}, {primary}"
        assert not exp["rolled_back"], where
        assert exp["guardrail_breaches"] == [], where
        assert srm is None or not srm["mismatch"], where
        assert primary["verdict"] not in ("challenger_better", "challenger_worse"), where
    last = reads[-1]
    assert last["model_a"]["total_predictions"] + last["model_b"]["total_predictions"] == \
        len(work)
    assert last["sample_ratio"]["users_a"] + last["sample_ratio"]["users_b"] == USERS
    assert last["model_a"]["labelled"] + last["model_b"]["labelled"] == len(work)
    assert last["primary"]["users_a"] > 0 and last["primary"]["users_b"] > 0

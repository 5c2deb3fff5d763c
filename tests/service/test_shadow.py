"""Shadow mode on a real `bentoml serve`: a pure shadow phase (challenger_share 0, shadow on).

No customer sees model B (every answer is model A's, with the response body unchanged), yet
every decision in the ledger carries model B's score and decision beside it; after labels
the `paired` block of /ab-stats fills and the disagreements route lists both scores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml
from helpers import ROOT, Server, Store, random_transactions, serve

pytestmark = [pytest.mark.service]

RESPONSE_KEYS = {"request_id", "is_fraud", "fraud_probability", "model_version", "model_tag",
                 "latency_ms", "timestamp"}


@pytest.fixture(scope="module")
def shadow(trained_store: Store, gate_report: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    workdir = tmp_path_factory.mktemp("shadow")
    cfg = yaml.safe_load((ROOT / "configs" / "ab.yaml").read_text())
    cfg["challenger_share"] = 0.0
    cfg["statistics"].update(min_labelled_per_arm=5, min_users_per_arm=5)
    cfg["guardrails"].update(check_interval_s=1)
    (workdir / "ab.yaml").write_text(yaml.safe_dump(cfg))
    with serve(trained_store, workdir, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_AB_CONFIG=str(workdir / "ab.yaml"), FRAUDSERVE_SHADOW="1") as srv:
        yield srv, workdir / "ledger.sqlite"


def transactions(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return random_transactions(n, seed, 60, "shadow-user-")


def test_pure_shadow_phase_records_both_models_and_fills_the_paired_block(
        shadow: tuple[Server, Path]) -> None:
    server, ledger = shadow
    sent = transactions(240)
    answers = []
    for body in sent[:200]:
        resp = requests.post(f"{server.url}/predict", json=body, timeout=15)
        assert resp.status_code == 200, resp.text
        answers.append(resp.json())
    resp = requests.post(f"{server.url}/predict_batch", json={"transactions": sent[200:]},
                         timeout=15)
    assert resp.status_code == 200, resp.text
    answers += resp.json()["results"]
    assert all(set(a) == RESPONSE_KEYS for a in answers)  # the shadow score is never returned
    assert {a["model_version"] for a in answers} == {"model_a"}  # no customer sees model B

    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT request_id, probability, shadow_probability, "
                            "shadow_is_fraud, amount FROM decisions").fetchall()
    stored = {r[0]: r[1:] for r in rows}
    assert len(stored) == 240
    for answer, body in zip(answers, sent, strict=True):
        p, shadow_p, shadow_flag, amount = stored[answer["request_id"]]
        assert p == pytest.approx(answer["fraud_probability"], abs=1e-6)
        assert shadow_p is not None and 0.0 <= shadow_p <= 1.0 and shadow_flag in (0, 1)
        assert amount == pytest.approx(body["amount"])
    assert sum(abs(r[1] - r[2]) > 1e-9 for r in rows) > 200  # two different models

    truth = np.random.default_rng(1).random(240) < 0.3
    for answer, fraud in zip(answers, truth, strict=True):
        resp = requests.post(f"{server.url}/feedback", timeout=15,
                             json={"request_id": answer["request_id"], "is_fraud": bool(fraud)})
        assert resp.status_code == 200, resp.text
    stats = requests.get(f"{server.url}/ab-stats", timeout=15).json()
    block = stats["paired"]
    assert (block["transactions"], block["labelled"], block["frauds"]) == (
        240, 240, int(truth.sum()))
    flags_a = {a["request_id"]: a["is_fraud"] for a in answers}
    caught_a = sum(flags_a[a["request_id"]] for a, f in zip(answers, truth, strict=True) if f)
    assert block["recall"]["model_a"]["value"] == pytest.approx(caught_a / truth.sum())
    assert block["recall"]["model_b"]["value"] is not None
    assert block["verdict"] in ("collecting", "no_difference", "challenger_better",
                                "challenger_worse")
    assert block["same_flag_rate"]["transactions"] == 240
    disagree = sum(bool(stored[a["request_id"]][2]) != a["is_fraud"] for a in answers)
    assert block["disagreement_rate"]["value"] == pytest.approx(disagree / 240)

    listed = requests.get(f"{server.url}/experiments/current/disagreements",
                          params={"limit": 10}, timeout=15).json()["disagreements"]
    assert len(listed) == min(10, disagree)
    for item in listed:
        assert item["decided_by"] == "model_a" and item["label"] in (True, False)
        assert item["model_a"]["is_fraud"] != item["model_b"]["is_fraud"]
    assert requests.get(f"{server.url}/experiments/current/disagreements",
                        params={"limit": 0}, timeout=15).status_code == 400

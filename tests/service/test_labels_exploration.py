"""Selective labels and exploration on a real `bentoml serve` (two API workers, one ledger).

- exploration lets a random share of would-be declines through, never above max_amount, each
  decision's propensity stored and its draw reproducible from the salt and request id;
- the daily budget holds across the two API workers: flagged traffic that would explore far
  more stops at the budget, both workers having explored;
- `POST /feedback` stores the label's `source`, and an unknown one is a 400 naming the field;
- with exploration off, declines labelled 30% of the time and approvals 90%, the verdicts say
  `label_bias` and the promotion (`python -m training.promote`) refuses, saying why.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from client import (
    LogWatch,
    ab_stats,
    concurrently,
    get,
    metric_samples,
    metric_sum,
    post,
    predict,
    user_ids,
    wait_for,
)
from helpers import BIN, PYTHON, ROOT, Server, Store, free_port, serve

from fraud.experiment.exploration import draw
from fraud.experiment.promotion import promotion_refusal
from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service]

RATE, MAX_AMOUNT, BUDGET, LEASE = 0.2, 100.0, 600.0, 100.0
MATURITY_DAYS = 1e-5  # 0.86 s: decisions are mature a second after they are made
NORMAL = {"amount": 12.5, "hour": 14, "merchant_risk": 0.1, "card_age_days": 900,
          "distance_km": 3, "num_recent_txns": 1, "is_international": 0}


def config(workdir: Path, **changes: Any) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "ab.yaml").read_text())
    cfg["labels"]["maturity_days"] = MATURITY_DAYS
    cfg["guardrails"]["check_interval_s"] = 1
    for section, values in changes.items():
        cfg[section].update(values)
    path = workdir / "ab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def rows(ledger: Path) -> dict[str, tuple[Any, ...]]:
    """request_id -> (is_fraud, explored, propensity, amount, label source) from the ledger."""
    with sqlite3.connect(ledger) as conn:
        found = conn.execute(
            "SELECT d.request_id, d.is_fraud, d.explored, d.propensity, d.amount, l.source "
            "FROM decisions d LEFT JOIN labels l ON l.request_id = d.request_id").fetchall()
    return {r[0]: r[1:] for r in found}


def flagged_txn(i: int, amount: float) -> dict[str, Any]:
    return {**EXAMPLE_TRANSACTION, "user_id": f"explore-user-{i % 50}", "amount": amount}


@pytest.fixture(scope="class")
def exploring(trained_store: Store, gate_report: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A serve exploring at 20% up to 100 with a budget of 600 a day, leased 100 at a time
    (class scope: stopped before the label-bias test starts its own)."""
    workdir = tmp_path_factory.mktemp("exploring")
    path = config(workdir, exploration={"enabled": True, "rate": RATE, "max_amount": MAX_AMOUNT,
                                        "daily_budget": BUDGET, "lease": LEASE})
    with serve(trained_store, workdir, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_AB_CONFIG=str(path)) as srv:
        yield srv, workdir / "ledger.sqlite"


class TestExploration:
    """Exploration on one serve, two API workers."""

    def test_a_capped_let_through_with_its_propensity_stored(
            self, exploring: tuple[Server, Path]) -> None:
        server, ledger = exploring
        salt = ab_stats(server)["experiment"]["salt"]  # open mode: the admin view
        amounts = [5.0 + (i % 16) if i % 2 == 0 else 150.0 + i for i in range(160)]
        answers = concurrently(lambda i: predict(server, flagged_txn(i, amounts[i])).body,
                               range(len(amounts)), threads=4)
        stored = wait_for(lambda: rows(ledger), lambda r: len(r) >= len(answers), timeout=10)
        explored = []
        for answer, amount in zip(answers, amounts, strict=True):
            model_flag, was_explored, propensity, kept_amount, _ = stored[answer["request_id"]]
            assert kept_amount == pytest.approx(amount)
            u = draw(salt, answer["request_id"])
            if was_explored:
                explored.append(answer)
                assert model_flag == 1 and amount <= MAX_AMOUNT and propensity == RATE
                assert answer["is_fraud"] is False and u < RATE  # the decision actually taken
            else:
                assert answer["is_fraud"] == bool(model_flag)
                assert propensity in (0.0, RATE)
                if propensity == RATE:  # eligible, not drawn
                    assert u >= RATE and model_flag == 1 and amount <= MAX_AMOUNT
            if amount > MAX_AMOUNT or not model_flag:
                assert propensity == 0.0 and not was_explored
        assert explored, "nothing was explored among ~80 eligible would-be declines"

        listed = get(server, "/experiments/current/explored?limit=1000").body
        assert {e["request_id"] for e in listed["explored"]} == \
            {a["request_id"] for a in explored}
        assert all(e["propensity"] == RATE and e["amount"] <= MAX_AMOUNT
                   for e in listed["explored"])
        assert get(server, "/experiments/current/explored?limit=0").status == 400
        counted = wait_for(lambda: metric_sum(metric_samples(server), "fraud_explored_total"),
                           lambda n: n == len(explored), timeout=5)
        assert counted == len(explored)
        today = ab_stats(server)["exploration"]["today"]
        assert today["explored"] == len(explored)
        assert today["explored_amount"] == pytest.approx(
            sum(stored[a["request_id"]][3] for a in explored))
        page = get(server, "/report")
        assert page.status == 200 and "explored today" in page.text

    def test_the_daily_budget_holds_across_the_two_workers(
            self, exploring: tuple[Server, Path]) -> None:
        server, ledger = exploring
        watch = LogWatch(server)
        amounts = [60.0 + (i % 41) for i in range(400)]  # would explore ~6,400 at 20%
        answers = concurrently(lambda i: predict(server, flagged_txn(1000 + i, amounts[i])),
                               range(len(amounts)), threads=8)
        time.sleep(1.0)
        with sqlite3.connect(ledger) as conn:
            spent = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM decisions "
                                 "WHERE explored = 1").fetchone()[0]
            leased, leases = conn.execute("SELECT leased, leases FROM exploration_budget"
                                          ).fetchone()
        assert spent <= BUDGET and leased <= BUDGET
        assert leased == pytest.approx(BUDGET)  # exhausted: the cap, not the traffic, stopped it
        assert spent >= BUDGET - 2 * MAX_AMOUNT  # at most a max amount unusable per worker
        assert leases == BUDGET / LEASE
        stored = rows(ledger)
        explored = [a for a in answers if stored[a.body["request_id"]][1]]
        workers = watch.workers(explored, "/predict")
        assert len(set(workers.values())) == 2, "both API workers explored"
        left = ab_stats(server)["exploration"]["today"]["budget_left"]
        assert left == pytest.approx(0.0)
        gauge = wait_for(lambda: metric_sum(metric_samples(server),
                                            "fraud_exploration_budget_left"),
                         lambda v: v == 0.0, timeout=5)
        assert gauge == 0.0

    def test_feedback_stores_its_source_and_refuses_an_unknown_one(
            self, exploring: tuple[Server, Path]) -> None:
        server, ledger = exploring
        rid = predict(server, {**EXAMPLE_TRANSACTION, "user_id": "source-user",
                               **NORMAL}).body["request_id"]
        answer = post(server, "/feedback", {"request_id": rid, "is_fraud": True,
                                            "source": "chargeback"})
        assert answer.status == 200, answer.text
        assert (answer.body["status"], answer.body["source"]) == ("created", "chargeback")
        assert rows(ledger)[rid][4] == "chargeback"
        for bad in ("rumour", 7, ""):
            refused = post(server, "/feedback", {"request_id": rid, "is_fraud": True,
                                                 "source": bad})
            assert refused.status == 400, refused.text
            assert ["source"] in [d["loc"] for d in refused.body["detail"]], refused.text
            assert "error" in refused.body
        labels = ab_stats(server)["labels"]
        assert sum(n.get("chargeback", 0) for n in labels["sources"].values()) == 1


def test_label_bias_refuses_the_promotion(trained_store: Store, gate_report: Path,
                                          tmp_path: Path) -> None:
    """Exploration off; declines labelled 30% of the time, approvals 90%: label_bias."""
    path = config(tmp_path, exploration={"enabled": False})
    with serve(trained_store, tmp_path, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_AB_CONFIG=str(path)) as server:
        users = user_ids("bias", 40)
        bodies = [{**EXAMPLE_TRANSACTION, "user_id": u, **(NORMAL if k % 2 else {}),
                   "amount": 20.0 + k} for arm_users in users.values() for u in arm_users
                  for k in range(4)]
        answers = concurrently(lambda b: predict(server, b).body, bodies, threads=4)
        declined = [a for a in answers if a["is_fraud"]]
        approved = [a for a in answers if not a["is_fraud"]]
        assert len(declined) > 40 and len(approved) > 40
        labels = [(a, True) for i, a in enumerate(declined) if i % 10 < 3]
        labels += [(a, i % 5 == 0) for i, a in enumerate(approved) if i % 10 < 9]
        for a, fraud in labels:
            answer = post(server, "/feedback", {"request_id": a["request_id"],
                                                "is_fraud": fraud,
                                                "source": "chargeback" if not a["is_fraud"]
                                                else "review"})
            assert answer.status == 200, answer.text
        time.sleep(MATURITY_DAYS * 86_400 + 1.0)
        body = ab_stats(server)
        assert not body["experiment"]["rolled_back"], body["experiment"]
        for arm, rates in body["labels"]["per_arm"].items():
            flagged, ok = rates["by_decision"]["flagged"], rates["by_decision"]["approved"]
            assert 0.15 < flagged["value"] < 0.45, (arm, flagged)
            assert 0.8 < ok["value"] <= 1.0, (arm, ok)
            assert flagged["ci_low"] <= flagged["value"] <= flagged["ci_high"]
            assert rates["label_bias"] is True
        assert body["labels"]["label_bias"] is True
        assert body["primary"]["verdict"] == "label_bias" and body["primary"]["label_bias"]
        refusal = promotion_refusal(body)
        assert refusal is not None and refusal.startswith("label_bias"), refusal

        promote = subprocess.run(
            [PYTHON, "-m", "training.promote", "--ledger", str(tmp_path / "ledger.sqlite")],
            cwd=ROOT, env=trained_store.env(FRAUDSERVE_AB_CONFIG=str(path)),
            capture_output=True, text=True, timeout=300)
        assert promote.returncode == 1, promote.stdout + promote.stderr
        assert "promote refused: label_bias" in promote.stderr, promote.stderr


@pytest.mark.parametrize(("field", "value"), [("rate", 0.5), ("daily_budget", -1)])
def test_a_bad_exploration_value_refuses_the_start_naming_the_field(
        trained_store: Store, tmp_path: Path, field: str, value: float) -> None:
    path = config(tmp_path, exploration={"enabled": True, "rate": 0.1, "max_amount": 10,
                                         "daily_budget": 10, field: value})
    out = subprocess.run(
        [str(BIN / "bentoml"), "serve", "service:FraudDetection", "--host", "127.0.0.1",
         "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=trained_store.env(FRAUDSERVE_AB_CONFIG=str(path)))
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    assert "fraudserve: 1 validation error for ABConfig" in text, text[-2000:]
    assert f"exploration.{field}" in text, text[-2000:]

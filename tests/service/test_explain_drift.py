"""POST /explain and GET /drift against a real `bentoml serve` (the module's `server` fixture:
2 API workers, open mode, on the session's models, which carry `drift_reference`).

The drift test comes first: the window must be empty when it looks, and /explain must not
fill it (explaining is not traffic). Then shifted traffic (the generator's `shift` knob) fills
both arms' windows through /predict_batch.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from typing import Any

import pytest
from helpers import Server
from prometheus_client.parser import text_string_to_metric_families

from fraud.assignment import assign
from fraud.config import GeneratorConfig, load_ab_config
from fraud.schema import ARMS, EXAMPLE_TRANSACTION, FEATURE_NAMES
from training.data import generate

pytestmark = [pytest.mark.service]

AB = load_ab_config()
# base_value + sum(contributions) == output: exact in the method (docs/explain-and-drift.md,
# 1e-9 in the unit tests); over HTTP the floats round-trip exactly through JSON, so the only
# error left is the summation order of 7 floats.
SUM_TOLERANCE = 1e-9
CONTINUOUS = ("amount", "merchant_risk", "card_age_days", "distance_km")


def call(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if path != "/metrics" else text
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text


def gauges(server: Server, name: str) -> dict[tuple[str, str], float]:
    """(model_version, feature) -> value of the gauge `name` on /metrics."""
    status, text = call(server, "GET", "/metrics")
    assert status == 200
    return {(s.labels["model_version"], s.labels["feature"]): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == name}


def check_sums(entry: dict[str, Any]) -> None:
    total = entry["base_value"] + math.fsum(entry["contributions"].values())
    assert abs(total - entry["output"]) <= SUM_TOLERANCE, (total, entry)
    assert list(entry["contributions"]) == list(FEATURE_NAMES)
    if entry["scale"] == "probability":
        assert entry["output"] == pytest.approx(entry["fraud_probability"], abs=1e-12)
    else:  # log-odds: the probability is the sigmoid of the sum
        assert 1 / (1 + math.exp(-entry["output"])) == pytest.approx(
            entry["fraud_probability"], abs=1e-9)
    assert entry["is_fraud"] == (entry["fraud_probability"] >= entry["threshold"])
    assert 1 <= len(entry["reasons"]) <= AB.explain.reasons
    top = sorted(entry["contributions"].values(), key=abs, reverse=True)[0]
    assert entry["reasons"][0]["contribution"] == pytest.approx(top)


def test_drift_has_no_verdict_before_traffic(server: Server) -> None:
    status, body = call(server, "GET", "/drift")
    assert status == 200, body
    assert set(body["arms"]) == set(ARMS)
    for arm in ARMS:
        report = body["arms"][arm]
        assert (report["ready"], report["drift"], report["rows"]) == (False, None, 0), report
        assert report["window"] == AB.drift.window and report["min_rows"] == AB.drift.min_rows
        assert set(report["features"]) == set(FEATURE_NAMES)
        assert all(f["psi"] is None and f["drift"] is None for f in report["features"].values())


def test_explain_adds_up_to_the_score_of_predict(server: Server) -> None:
    user = str(EXAMPLE_TRANSACTION["user_id"])
    arm = assign(user, AB.salt, AB.challenger_share)
    status, body = call(server, "POST", "/explain", EXAMPLE_TRANSACTION)
    assert status == 200, body
    assert body["model_version"] == arm
    assert [e["model_version"] for e in body["explanations"]] == [arm]
    entry = body["explanations"][0]
    check_sums(entry)
    status, decided = call(server, "POST", "/predict", EXAMPLE_TRANSACTION)
    assert status == 200, decided
    assert decided["model_version"] == arm and decided["model_tag"] == entry["model_tag"]
    # /predict reports the probability rounded to 6 decimals.
    assert decided["fraud_probability"] == pytest.approx(entry["fraud_probability"], abs=5e-7)
    assert decided["is_fraud"] == entry["is_fraud"]
    assert "request_id" not in body  # no decision is made, nothing is stored


def test_explain_both_gives_both_arms_assigned_first(server: Server) -> None:
    users = {assign(f"explain-{i}", AB.salt, AB.challenger_share): f"explain-{i}"
             for i in range(50)}
    assert set(users) == set(ARMS)
    for arm, user in users.items():
        status, body = call(server, "POST", "/explain?both=true",
                            {**EXAMPLE_TRANSACTION, "user_id": user})
        assert status == 200, body
        assert body["model_version"] == arm
        order = [e["model_version"] for e in body["explanations"]]
        assert order == [arm, *(a for a in ARMS if a != arm)]
        for entry in body["explanations"]:
            check_sums(entry)
        assert body["explanations"][0]["model_tag"] != body["explanations"][1]["model_tag"]


@pytest.mark.parametrize(("body", "field"), [
    ({**EXAMPLE_TRANSACTION, "amount": -1}, "amount"),
    ({**EXAMPLE_TRANSACTION, "hour": 24}, "hour"),
    ({k: v for k, v in EXAMPLE_TRANSACTION.items() if k != "merchant_risk"}, "merchant_risk"),
    ({**EXAMPLE_TRANSACTION, "is_international": "yes"}, "is_international"),
])
def test_explain_bad_input_is_a_400_naming_the_field(server: Server, body: dict[str, Any],
                                                     field: str) -> None:
    status, answer = call(server, "POST", "/explain", body)
    assert status == 400, answer
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
    assert any(d["loc"][-1] == field for d in answer["detail"]), answer


def shifted_rows(n: int, shift: float, seed: int) -> list[dict[str, Any]]:
    df = generate(GeneratorConfig(n_rows=n, shift=shift), seed=seed)
    ints = {"hour", "num_recent_txns", "is_international"}
    return [{"user_id": f"drift-{seed}-{i}",
             **{k: int(v) if k in ints else float(v)
                for k, v in zip(FEATURE_NAMES, row, strict=True)}}
            for i, row in enumerate(df[list(FEATURE_NAMES)].itertuples(index=False))]


def test_drift_flags_shifted_traffic_per_arm(server: Server) -> None:
    """1,400 rows at shift 1 split over both arms fill each window past min_rows (500): both
    arms judge the continuous features drifting, and the router publishes the gauges."""
    status, body = call(server, "GET", "/drift")
    assert status == 200, body
    served = {arm: body["arms"][arm]["rows"] for arm in ARMS}  # /predict calls made earlier
    for seed in (31, 32):
        status, body = call(server, "POST", "/predict_batch",
                            {"transactions": shifted_rows(700, 1.0, seed)})
        assert status == 200, str(body)[:300]
        for r in body["results"]:
            served[r["model_version"]] += 1
    assert all(n >= AB.drift.min_rows for n in served.values()), served
    status, body = call(server, "GET", "/drift")
    assert status == 200, body
    for arm in ARMS:
        report = body["arms"][arm]
        assert report["ready"] is True and report["drift"] is True, report
        assert report["rows"] == min(served[arm], AB.drift.window), (arm, served)
        drifting = {f for f, v in report["features"].items() if v["drift"]}
        assert set(CONTINUOUS) <= drifting, (arm, report["features"])
    deadline = time.monotonic() + 3 * AB.drift.check_interval_s
    psi = gauges(server, "fraud_feature_drift_psi")
    while len(psi) < len(ARMS) * len(FEATURE_NAMES) and time.monotonic() < deadline:
        time.sleep(1)
        psi = gauges(server, "fraud_feature_drift_psi")
    assert len(psi) == len(ARMS) * len(FEATURE_NAMES), psi
    flags = gauges(server, "fraud_feature_drift")
    for arm in ARMS:
        for feature in CONTINUOUS:
            assert flags[(arm, feature)] == 1.0
            assert psi[(arm, feature)] > 0

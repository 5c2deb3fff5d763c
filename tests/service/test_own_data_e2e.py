"""A second, different data set through the whole loop on a real `bentoml serve`: a web shop's
CSV (12 features, two categorical, a boolean, a timestamp, a card id, its own column names)
-> train (time split grouped by card, cost threshold; scikit-learn champion, XGBoost
challenger) -> gate -> serve -> predict -> feedback -> /ab-stats -> explain -> drift; and the
seed-schema service refusing these models, naming the differences.

The service loads XGBoost models (fraud/serving/families.load_estimator in service.py's
ABRouter) and takes the amount from fraud.schema.AMOUNT_INDEX (fraud/serving/path.py).
FRAUDSERVE_SERVICE_DIR serves another directory's service.py and fraud/ (by default this
checkout's).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import BIN, PYTHON, ROOT, Server, Store, free_port, own_home, run_gate, stop
from helpers import wait_ready as _wait_ready
from owndata import shop

pytestmark = [pytest.mark.service, pytest.mark.slow]
SERVICE_DIR = Path(os.environ.get("FRAUDSERVE_SERVICE_DIR") or ROOT)
NAMES = [line.split("name: ")[1].split(",")[0] for line in shop.FEATURES_YAML.splitlines()
         if "name: " in line]
BODY = {"user_id": "shopper-1", "amount_eur": 420.0, "hour_local": 3,
        "merchant_category": "electronics", "device": "web", "card_present": False,
        "account_age_days": 4, "txn_count_1h": 6, "txn_count_24h": 14,
        "distance_from_home_km": 800, "ip_risk": 0.9, "avg_amount_30d": 35.0,
        "failed_logins_24h": 3}


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return shop.write(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="module")
def shop_env(shop_files: dict[str, Path]) -> dict[str, str]:
    return {"FRAUDSERVE_FEATURES": str(shop_files["features.yaml"])}


@pytest.fixture(scope="module")
def shop_store(shop_files, shop_env, tmp_path_factory) -> Store:
    root = tmp_path_factory.mktemp("shop-store")
    store = Store(home=root / "bentoml", mlflow_uri=f"sqlite:///{root / 'mlruns.db'}")
    out = subprocess.run(["nice", "-n", "10", PYTHON, "-m", "training", "--config",
                          str(shop_files["training.yaml"])], cwd=ROOT,
                         env=store.env(**shop_env), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return store


@pytest.fixture(scope="module")
def shop_gate(shop_store, shop_files, shop_env, tmp_path_factory) -> Path:
    report = tmp_path_factory.mktemp("shop-gate") / "gate_report.json"
    out = run_gate(shop_store, report, FRAUDSERVE_GATE_CONFIG=str(shop_files["gate.yaml"]),
                   **shop_env)
    assert out.returncode == 0, out.stdout[-4000:]
    return report


def _serve(store: Store, workdir: Path, env: dict[str, str], ready: bool = True
           ) -> Iterator[Server]:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    full = store.env(**{"BENTOML_HOME": str(own_home(store, workdir / f"home-{port}")),
                        "BENTOML_CONFIG_OPTIONS": "services.FraudDetection.workers=1",
                        "FRAUDSERVE_LEDGER": str(workdir / "ledger.sqlite"),
                        "PYTHONPATH": str(SERVICE_DIR), **env})
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "bentoml"), "serve", "service:FraudDetection",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                cwd=SERVICE_DIR, env=full, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    try:
        if ready:
            from loadtests.run import Service

            _wait_ready(Service(url=server.url, proc=proc, log=log), 180)
        yield server
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def shop_server(shop_store, shop_gate, shop_env, tmp_path_factory) -> Iterator[Server]:
    yield from _serve(shop_store, tmp_path_factory.mktemp("shop-serve"),
                      {**shop_env, "FRAUDSERVE_GATE_REPORT": str(shop_gate)})


def call(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode(errors="replace") or "null")


def test_the_gate_report_carries_the_cost_rule_and_its_curve(shop_gate):
    report = json.loads(shop_gate.read_text())
    assert report["passed"]
    rules = {m["threshold_rule"]["rule"] for m in report["models"].values()}
    assert rules == {"cost"}
    for model in report["models"].values():
        assert model["threshold_rule"]["curve"] and "cost_per_1000" in model["threshold_rule"][
            "chosen"]


def test_the_published_schema_is_the_shops(shop_server):
    status, doc = call(shop_server, "GET", "/docs.json")
    assert status == 200
    schemas = doc["components"]["schemas"]
    props = next(s["properties"] for s in schemas.values()
                 if "merchant_category" in s.get("properties", {}))
    assert list(props) == ["user_id", *NAMES]
    assert props["device"]["enum"] == ["ios", "android", "web"]
    assert props["card_present"]["type"] == "boolean"


def test_the_whole_loop(shop_server, shop_files):
    # predict: one body, a new merchant category (scored as 'other'), a device not listed (400)
    status, first = call(shop_server, "POST", "/predict", BODY)
    assert status == 200, first
    assert first["model_version"] in ("model_a", "model_b") and first["is_fraud"] is True
    status, other = call(shop_server, "POST", "/predict",
                         {**BODY, "user_id": "shopper-2", "merchant_category": "jewellery"})
    assert status == 200, other
    status, bad = call(shop_server, "POST", "/predict", {**BODY, "device": "fax"})
    assert status == 400
    assert "device must be one of 'ios', 'android', 'web'" in json.dumps(bad)

    # held-out rows of the file, as the service's request bodies, both arms
    test_rows = _bodies(shop_files["payments.csv"], 1400)
    results = []
    for chunk in (test_rows[:700], test_rows[700:]):
        status, body = call(shop_server, "POST", "/predict_batch",
                            {"transactions": [b for b, _ in chunk]})
        assert status == 200, body
        results += body["results"]
    assert {r["model_version"] for r in results} == {"model_a", "model_b"}

    # feedback for the first 300, then the experiment counts them
    for result, (_, label) in list(zip(results, test_rows, strict=True))[:300]:
        status, _ = call(shop_server, "POST", "/feedback",
                         {"request_id": result["request_id"], "is_fraud": bool(label)})
        assert status == 200
    status, stats = call(shop_server, "GET", "/ab-stats")
    assert status == 200
    assert sum(stats[arm]["total_predictions"] for arm in ("model_a", "model_b")) == 1402

    # explain: both models, the XGBoost one by its own contributions, phrased by the file
    status, explained = call(shop_server, "POST", "/explain?both=true", BODY)
    assert status == 200, explained
    by_tag = {e["model_tag"].split(":")[0]: e for e in explained["explanations"]}
    assert set(by_tag) == {"shop_rf", "shop_xgb"}
    xgb = by_tag["shop_xgb"]
    assert xgb["scale"] == "log_odds" and list(xgb["contributions"]) == NAMES
    assert abs(xgb["base_value"] + sum(xgb["contributions"].values()) - xgb["output"]) < 1e-5
    texts = " ".join(r["text"] for e in by_tag.values() for r in e["reasons"])
    assert any(p in texts for p in ("merchant sells electronics", "paid from web",
                                    "420 EUR", "card not present")), texts

    # drift: every feature of both arms, categories by PSI only
    status, drift = call(shop_server, "GET", "/drift")
    assert status == 200, drift
    for arm in ("model_a", "model_b"):
        report = drift["arms"][arm]
        assert report["ready"] and list(report["features"]) == NAMES
        assert report["features"]["device"]["ks"] is None
        assert report["features"]["device"]["psi"] is not None
        assert report["features"]["amount_eur"]["ks"] is not None


def test_the_seed_schema_service_refuses_these_models(shop_store, tmp_path):
    port = free_port()
    out = subprocess.run([str(BIN / "bentoml"), "serve", "service:FraudDetection", "--host",
                          "127.0.0.1", "--port", str(port)], cwd=SERVICE_DIR,
                         env=shop_store.env(PYTHONPATH=str(SERVICE_DIR)), capture_output=True,
                         text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    lines = [line for line in text.splitlines() if line.startswith("fraudserve:")]
    assert len(lines) == 1, text[-2000:]
    assert "another feature schema" in lines[0]
    assert "feature 'amount_eur' is not in the served schema" in lines[0]
    assert "feature 'amount' is new in the served schema" in lines[0]


def _bodies(csv: Path, n: int) -> list[tuple[dict[str, Any], int]]:
    """The newest `n` rows of the file (the test period) as /predict bodies with labels."""
    df = pd.read_csv(csv).tail(n)
    rename = {"amt": "amount_eur", "ip_score": "ip_risk"}
    out = []
    for i, row in enumerate(df.rename(columns=rename).to_dict("records")):
        body = {name: row[name] for name in NAMES}
        body["card_present"] = row["card_present"] in (True, "true")
        for name in ("hour_local", "txn_count_1h", "txn_count_24h", "failed_logins_24h"):
            body[name] = int(body[name])
        out.append(({"user_id": f"shopper-{i % 400}", **body}, int(row["chargeback"])))
    return out

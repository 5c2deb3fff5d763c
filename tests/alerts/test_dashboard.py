"""The Grafana dashboard: its JSON is well formed, and every panel's PromQL returns data from a
real Prometheus scraping a real `bentoml serve` after some traffic.

Grafana itself is not run (not installable here): `$__rate_interval` is replaced by RANGE,
which is what Grafana would send for a 1 s scrape interval and a short time range, and
`$namespace` by the variable's All value (`.*`, which also matches series without a namespace
label, as a local Prometheus scrapes them).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import yaml
from helpers import ROOT, Server, free_port, prometheus_binary, stop

from fraud.schema import EXAMPLE_TRANSACTION

GRAFANA = ROOT / "configs" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "fraudserve.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "fraudserve.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "fraudserve.yml"
RANGE = "1m"
ALL = ".*"  # the namespace variable's allValue
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DRIFT_METRICS = ("fraud_feature_drift_psi", "fraud_feature_drift")
DEADLINE_S = 120


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def targets() -> list[tuple[str, str]]:
    """(test id, PromQL) for every target of every panel, `$__rate_interval` filled in."""
    out = []
    for p in load_dashboard()["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", RANGE).replace("$namespace", ALL)
            out.append((f"{p['id']}:{p['title']}:{t['refId']}", expr))
    return out


def drift_wired() -> bool:
    return "fraud_feature_drift" in (ROOT / "fraud" / "serving" / "telemetry.py").read_text()


# -- structure (no server) ------------------------------------------------------------------

def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in load_dashboard()["templating"]["list"]}


def test_datasource_and_namespace_variables() -> None:
    """The datasource is a variable (defaulting to the provisioned Prometheus), and a
    namespace variable (multi, All = `.*`) filters every series of every panel."""
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    found = variables()
    ds = found["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert ds["current"]["value"] == uid
    ns = found["namespace"]
    assert ns["type"] == "query" and ns["datasource"] == DATASOURCE
    assert ns["includeAll"] and ns["multi"] and ns["allValue"] == ALL
    assert "label_values(" in ns["definition"] and ", namespace)" in ns["definition"]
    for p in load_dashboard()["panels"]:
        for t in p.get("targets", []):
            metrics = re.findall(r"\b(?:fraud|bentoml)_\w+(\{[^}]*\})?", t["expr"])
            assert metrics and all('namespace=~"$namespace"' in m for m in metrics), t["expr"]


def test_panels_have_unique_ids_and_the_datasource_variable() -> None:
    dash = load_dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    assert dash["uid"] and isinstance(dash["schemaVersion"], int)
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            assert "targets" not in p, p["title"]
            continue
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert p["datasource"] == DATASOURCE, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), (p["title"], t)


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for p in load_dashboard()["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_dashboard_covers_the_required_metrics() -> None:
    exprs = " ".join(e for _, e in targets())
    for metric in ("fraud_predictions_total", "fraud_prediction_latency_seconds_bucket",
                   "fraud_scoring_errors_total", "fraud_router_batch_size_bucket",
                   "fraud_ab_primary_p_value", "fraud_ab_srm_p_value", "fraud_ab_verdict",
                   "fraud_ab_rollback_active", "fraud_ledger_up",
                   "fraud_ledger_write_failures_total", *DRIFT_METRICS):
        assert metric in exprs, f"no panel queries {metric}"


def test_provider_and_datasource_files() -> None:
    ds = yaml.safe_load(DATASOURCES.read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load(PROVIDERS.read_text())
    assert prov["apiVersion"] == 1
    assert prov["providers"][0]["type"] == "file" and prov["providers"][0]["options"]["path"]


# -- every panel against a real Prometheus and a real service --------------------------------

@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return prometheus_binary()


def _traffic(url: str, n: int, tag: str) -> None:
    """Scored singles (both arms), labels, bulk rows, one 400 and one 413."""
    def one(i: int) -> None:
        body = {**EXAMPLE_TRANSACTION, "user_id": f"{tag}-{i}", "amount": 10.0 + i % 400,
                "card_age_days": 15 + (i * 7) % 800}
        r = requests.post(f"{url}/predict", json=body, timeout=30)
        assert r.status_code == 200, r.text
        if i % 2:
            requests.post(f"{url}/feedback", json={"request_id": r.json()["request_id"],
                                                   "is_fraud": bool(i % 3)}, timeout=30)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))
    bad = {**EXAMPLE_TRANSACTION, "amount": -1}
    assert requests.post(f"{url}/predict", json=bad, timeout=10).status_code in (400, 422)
    big = requests.post(f"{url}/predict", data=b"x" * 70_000, timeout=10,
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413


def _bulk(url: str, rows: int, tag: str) -> None:
    """Enough rows for the drift window (500 per arm) through /predict_batch."""
    for start in range(0, rows, 100):
        batch = [{**EXAMPLE_TRANSACTION, "user_id": f"{tag}-bulk-{i}", "amount": 5.0 + i % 700}
                 for i in range(start, start + 100)]
        r = requests.post(f"{url}/predict_batch", json={"transactions": batch}, timeout=60)
        assert r.status_code == 200, r.text


def _query(port: int, expr: str) -> dict[str, Any]:
    r = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=10)
    return r.json()


def _has_data(answer: dict[str, Any]) -> bool:
    result = answer.get("data", {}).get("result", [])
    return any(math.isfinite(float(s["value"][1])) for s in result)


@pytest.fixture(scope="module")
def live(server: Server, prometheus_bin: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """Every panel query's answer once all have data (or the deadline passed)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    cfg = yaml.safe_load((ROOT / "configs" / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(ROOT / "configs" / "alerts.yml")]
    cfg["scrape_configs"][0]["static_configs"] = [
        {"targets": [server.url.removeprefix("http://")]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    with open(tmp / "prom.log", "wb") as log:
        proc = subprocess.Popen(
            [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _traffic(server.url, 200, "dash")
        _bulk(server.url, 1400, "dash")
        wanted = {name for name, expr in targets()
                  if drift_wired() or not any(m in expr for m in DRIFT_METRICS)}
        answers: dict[str, dict[str, Any]] = {}
        deadline, rnd = time.monotonic() + DEADLINE_S, 0
        while time.monotonic() < deadline:
            rnd += 1
            _traffic(server.url, 16, f"dash-{rnd}")  # keeps every rate window non-empty
            try:
                answers = {name: _query(port, expr) for name, expr in targets()}
            except (requests.RequestException, ValueError):
                time.sleep(1)
                continue
            if all(_has_data(answers[n]) for n in wanted):
                break
            time.sleep(2)
        answers["__log__"] = {"text": (tmp / "prom.log").read_text()[-2000:]}
        yield answers
    finally:
        stop(proc)


@pytest.mark.alerts
@pytest.mark.service
@pytest.mark.parametrize("name,expr", targets(), ids=[n for n, _ in targets()])
def test_panel_query_returns_data(live: dict[str, dict[str, Any]], name: str, expr: str) -> None:
    answer = live.get(name)
    assert answer is not None, live["__log__"]["text"]
    assert answer.get("status") == "success", f"{name}: {answer}"  # the PromQL parses
    values = [(s["metric"], s["value"][1]) for s in answer["data"]["result"]]
    print(f"{name}\n  {expr}\n  -> {values}")
    drift = [m for m in DRIFT_METRICS if m in expr]
    if drift and not drift_wired():
        pytest.skip(f"panel {name!r}: {drift[0]} is not exported yet (no fraud_feature_drift "
                    "in fraud/serving/telemetry.py: the drift wiring of issue 12 item 2 has not "
                    "landed); the query parsed and returned nothing")
    assert _has_data(answer), f"panel {name!r} returned no finite value: {values}"

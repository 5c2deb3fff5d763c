"""A real Prometheus server scrapes a real `bentoml serve` on loopback."""

import subprocess
import time

import pytest
import requests
import yaml
from helpers import ROOT, free_port, prometheus_binary, stop

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.alerts, pytest.mark.service]


@pytest.fixture
def prometheus_bin() -> str:
    return prometheus_binary()


def test_prometheus_scrapes_fraud_metrics_by_arm(server, prometheus_bin, tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(ROOT / "configs" / "alerts.yml")]
    job = cfg["scrape_configs"][0]
    job["static_configs"] = [{"targets": [server.url.removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    # Traffic to both arms before the first scrape.
    for i in range(60):
        body = {**EXAMPLE_TRANSACTION, "user_id": f"scrape-user-{i}"}
        assert requests.post(f"{server.url}/predict", json=body, timeout=10).status_code == 200
    port = free_port()
    with open(tmp_path / "prom.log", "wb") as log:
        proc = subprocess.Popen(
            [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        query = 'sum by (model_version) (fraud_predictions_total)'
        deadline, result = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/v1/query",
                                 params={"query": query}, timeout=5).json()
                result = r["data"]["result"]
                if {s["metric"].get("model_version") for s in result} == {"model_a", "model_b"}:
                    break
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(1)
        by_arm = {s["metric"]["model_version"]: float(s["value"][1]) for s in result}
        assert set(by_arm) == {"model_a", "model_b"}, (tmp_path / "prom.log").read_text()[-2000:]
        assert all(v > 0 for v in by_arm.values())
        exposed = requests.get(f"{server.url}/metrics", timeout=5).text
        for arm, value in by_arm.items():
            total = sum(float(line.rsplit(" ", 1)[1]) for line in exposed.splitlines()
                        if line.startswith("fraud_predictions_total{")
                        and f'model_version="{arm}"' in line)
            assert value == total  # no traffic since the scrape
        rules = requests.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()
        names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert {"FraudPredictionLatencyHigh", "NoPredictions", "ChallengerRolledBack"} <= names
    finally:
        stop(proc)

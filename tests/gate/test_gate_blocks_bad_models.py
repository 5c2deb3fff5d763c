"""A model trained on shuffled labels: the gate fails with the metric and the gap, the build
stops, and a service given that model never becomes ready."""

import subprocess
import time

import pytest
import requests
import yaml
from helpers import PYTHON, ROOT, load_json, run_gate, serve, train

from fraud.config import GeneratorConfig
from training.data import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    df = generate(GeneratorConfig(n_rows=20_000), 11).drop(columns="scenario")
    df["is_fraud"] = df["is_fraud"].sample(frac=1.0, random_state=0).to_numpy()  # no signal
    df.to_csv(root / "shuffled.csv", index=False)
    cfg = yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())
    cfg["data"].update(source="csv", csv_path=str(root / "shuffled.csv"))
    cfg["champion"]["params"]["n_estimators"] = 30
    (root / "training.yaml").write_text(yaml.safe_dump(cfg))
    store = train(root, config=root / "training.yaml")
    report = root / "gate_report.json"
    return store, report, run_gate(store, report), root


def test_gate_fails_naming_model_metric_value_floor_and_gap(bad):
    _, report_path, result, _ = bad
    assert result.returncode != 0
    out = result.stdout
    assert "GATE FAILED" in out
    assert "(model_a) f1 = " in out and "< floor 0.7000 (short by" in out
    assert "(model_a) roc_auc = " in out and "< floor 0.8500" in out
    report = load_json(report_path)
    assert report["passed"] is False
    assert all(not m["passed"] for m in report["models"].values())
    f1 = next(c for c in report["checks"] if c["name"] == "f1" and c["arm"] == "model_a")
    assert f1["passed"] is False and f1["floor"] == 0.7 and f1["gap"] < 0
    assert f1["gap"] == pytest.approx(f1["value"] - 0.7)


def test_gate_fails_closed_without_models(tmp_path):
    from helpers import Store

    empty = Store(home=tmp_path / "empty", mlflow_uri=f"sqlite:///{tmp_path / 'm.db'}")
    result = run_gate(empty, tmp_path / "r.json")
    assert result.returncode != 0
    assert "is not in the BentoML store" in result.stdout
    assert load_json(tmp_path / "r.json")["passed"] is False


def test_build_and_image_stop_at_the_gate(bad):
    store, report, _, _root = bad
    env = store.env(FRAUDSERVE_GATE_REPORT=str(report))
    refused = subprocess.run([PYTHON, "-m", "gating.build"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    assert refused.returncode != 0
    assert "build refused: the gate report did not pass" in refused.stderr + refused.stdout
    for target in ("build", "image"):
        made = subprocess.run(["make", target, f"BIN={PYTHON.rsplit('/', 1)[0]}"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=600)
        assert made.returncode != 0, made.stdout[-2000:]
        assert "GATE FAILED" in made.stdout
        assert "bentoml build" not in made.stdout.split("GATE FAILED")[-1]
    bentos = subprocess.run([PYTHON, "-m", "bentoml", "list", "-o", "json"], env=env,
                            capture_output=True, text=True)
    assert "fraudserve" not in bentos.stdout


def test_service_with_the_bad_model_never_becomes_ready(bad, tmp_path):
    store, report, _, _ = bad
    with serve(store, tmp_path, expect_ready=False, FRAUDSERVE_GATE_REPORT=str(report)) as srv:
        deadline, seen = time.monotonic() + 90, []
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{srv.url}/health", timeout=2)
                seen.append(requests.get(f"{srv.url}/readyz", timeout=2).status_code)
                if health.status_code == 503:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        assert health.status_code == 503
        assert "FAILED the gate" in health.json()["reason"]
        for _ in range(6):
            assert requests.get(f"{srv.url}/readyz", timeout=2).status_code == 503
            time.sleep(0.5)
        from fraud.schema import EXAMPLE_TRANSACTION

        scored = requests.post(f"{srv.url}/predict", json=EXAMPLE_TRANSACTION, timeout=10)
        assert scored.status_code == 503
        assert 200 not in seen
        assert "not ready: model" in srv.logs()

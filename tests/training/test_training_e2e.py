"""Training end to end into a temp BentoML store and MLflow store (real CLI, small data)."""

import json
import subprocess
from pathlib import Path

import pytest
from helpers import PYTHON, ROOT, train

from fraud.schema import FEATURE_NAMES, SCHEMA, SCHEMA_HASH

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    return train(tmp_path_factory.mktemp("small"), rows=20_000)


def _bentoml_models(store):
    out = subprocess.run([PYTHON, "-c",
                          "import bentoml, json; print(json.dumps([(str(m.tag), m.info.labels,"
                          " m.info.metadata) for m in bentoml.models.list()]))"],
                         env=store.env(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_two_models_in_the_bentoml_store_with_serving_metadata(small_store):
    models = _bentoml_models(small_store)
    assert sorted(t.split(":")[0] for t, _, _ in models) == ["fraud_hgb", "fraud_rf"]
    for _tag, labels, meta in models:
        assert labels["role"] in {"champion", "challenger"}
        assert meta["features"] == list(FEATURE_NAMES)
        assert meta["schema"] == SCHEMA and meta["schema_hash"] == SCHEMA_HASH
        assert 0 < meta["threshold"] < 1
        assert set(meta["split_hashes"]) == {"train", "validation", "test"}
        assert len(set(meta["split_hashes"].values())) == 3
        assert meta["split_sizes"] == {"train": 12000, "validation": 4000, "test": 4000}
        assert meta["mlflow_run_id"] and meta["mlflow_model_version"] in {"1", "2"}
        assert {"scikit-learn", "numpy", "python"} <= set(meta["library_versions"])
        assert 0.5 < meta["metrics"]["test"]["roc_auc"] <= 1
        drift = meta["drift_reference"]  # PSI bins and KS sketch of the training split
        assert drift["rows"] == 12000 and set(drift["features"]) == set(FEATURE_NAMES)
        assert all(abs(sum(f["proportions"]) - 1) < 1e-9 for f in drift["features"].values())


def test_mlflow_runs_registry_and_aliases(small_store):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=small_store.mlflow_uri)
    exp = client.get_experiment_by_name("fraudserve")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2
    roles = {r.data.tags["role"] for r in runs}
    assert roles == {"champion", "challenger"}
    for run in runs:
        assert "test_f1" in run.data.metrics and "val_roc_auc" in run.data.metrics
        assert "importance_amount" in run.data.metrics
        assert run.data.params["model.random_state"] == "7"
        local = client.download_artifacts(run.info.run_id, "evaluation/test_report.json")
        report = json.loads(Path(local).read_text())
        assert report["overall"]["num_samples"] == 4000
        assert all("num_samples" in s for s in report["slices"].values())
    champion = client.get_model_version_by_alias("fraud-detector", "champion")
    challenger = client.get_model_version_by_alias("fraud-detector", "challenger")
    assert {str(champion.version), str(challenger.version)} == {"1", "2"}
    by_run = {r.info.run_id: r.data.tags["role"] for r in runs}
    assert by_run[champion.run_id] == "champion"


def test_if_missing_skips_when_models_exist(small_store):
    out = subprocess.run([PYTHON, "-m", "training", "--if-missing"], cwd=ROOT,
                         env=small_store.env(), capture_output=True, text=True, check=True)
    assert "skipping" in out.stdout
    assert len(_bentoml_models(small_store)) == 2


def test_bad_config_is_one_clear_line(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("data: {source: csv}\nchampion: {name: a, estimator: random_forest}\n"
                   "challenger: {name: b, estimator: random_forest}\n")
    out = subprocess.run([PYTHON, "-m", "training", "--config", str(cfg)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "csv_path is required" in out.stderr and "Traceback" not in out.stderr

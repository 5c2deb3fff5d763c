"""Model lookup refuses a model trained on another feature schema, naming the differences."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fraud.schema import FEATURE_NAMES, SCHEMA, SCHEMA_HASH
from fraud.serving.models import schema_problem

ROOT = Path(__file__).resolve().parents[3]


def _meta(schema: list[dict]) -> dict:
    from fraud.features import schema_hash

    return {"features": [f["name"] for f in schema], "schema": schema,
            "schema_hash": schema_hash(schema), "threshold": 0.5}


def test_the_served_schema_is_accepted():
    assert schema_problem(_meta(SCHEMA)) is None


def test_a_model_saved_without_a_schema_is_judged_by_its_feature_names():
    assert schema_problem({"features": list(FEATURE_NAMES)}) is None
    problem = schema_problem({"features": ["amount", "hour"]})
    assert problem and "trained on features ['amount', 'hour']" in problem


def test_another_schema_is_refused_with_each_difference_named():
    other = [dict(f) for f in SCHEMA if f["name"] != "distance_km"]
    other[1] = {**other[1], "max": 24}
    other.append({"name": "channel", "type": "category", "values": ["web", "app"],
                  "unseen": "reject"})
    problem = schema_problem(_meta(other))
    assert problem is not None and "another feature schema" in problem
    assert "hour: max was 24 in training, 23.0 now" in problem
    assert "feature 'channel' is not in the served schema" in problem
    assert "feature 'distance_km' is new in the served schema" in problem


def test_metadata_without_none_values_still_matches():
    # BentoML metadata cannot hold None: registry drops those keys, the hash still matches.
    stored = [{k: v for k, v in f.items() if v is not None} for f in SCHEMA]
    assert schema_problem({**_meta(SCHEMA), "schema": stored,
                           "schema_hash": SCHEMA_HASH}) is None


STORE = """
import sys
import bentoml
import numpy as np
from sklearn.linear_model import LogisticRegression
from fraud.schema import FEATURE_NAMES, SCHEMA, SCHEMA_HASH
X = np.random.default_rng(0).random((40, len(FEATURE_NAMES)))
est = LogisticRegression().fit(X, np.arange(40) % 2)
for role in ("champion", "challenger"):
    bentoml.sklearn.save_model(f"m_{role}", est, labels={"role": role, "project": "fraudserve"},
                               metadata={"features": list(FEATURE_NAMES), "schema": SCHEMA,
                                         "schema_hash": SCHEMA_HASH, "threshold": 0.5})
"""
RESOLVE = """
from fraud.config import load_ab_config
from fraud.serving.models import ModelMismatch, resolve_arms
try:
    resolve_arms(load_ab_config())
except ModelMismatch as exc:
    print(f"refused: {exc}")
else:
    print("accepted")
"""


def test_a_real_store_model_is_refused_under_another_feature_file(tmp_path):
    other = tmp_path / "features.yaml"
    other.write_text((ROOT / "configs" / "features.yaml").read_text().replace(
        "    max: 23\n", "    max: 24\n"))
    env = {"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
           "PATH": "/usr/bin:/bin"}

    def run(code: str, **extra: str) -> str:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **extra},
                             capture_output=True, text=True, timeout=120, check=True)
        return out.stdout.strip()

    run(STORE)
    assert run(RESOLVE) == "accepted"
    refused = run(RESOLVE, FRAUDSERVE_FEATURES=str(other))
    assert refused.startswith("refused: model m_champion:")
    assert "hour: max was 23.0 in training, 24.0 now" in refused

"""The reference's own examples behave as its users expect, on the suite's trained models.

The reference's README scores one suspicious transaction (amount 250, 23h, merchant risk 0.8, a
15-day-old card, 500 km away, 10 recent transactions, international); its load test sends
"normal" transactions (amount 10-200, 8-20h, merchant risk 0-0.3, card 90-1500 days, 0-20 km,
0-5 recent, domestic) that "should predict legit" and "suspicious" ones that "should predict
fraud". Each served model, at its own saved threshold, must agree.
"""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

import pytest
from helpers import PYTHON, ROOT, Store

from fraud.schema import EXAMPLE_TRANSACTION, FEATURE_NAMES

pytestmark = pytest.mark.slow

SUSPICIOUS = {name: EXAMPLE_TRANSACTION[name] for name in FEATURE_NAMES}
ORDINARY = {"amount": 105.0, "hour": 14, "merchant_risk": 0.15, "card_age_days": 795,
            "distance_km": 10.0, "num_recent_txns": 2, "is_international": 0}  # profile centre
DRAWS = 500

# Scores rows with both arms' models as the gate loads them: {arm: {threshold, scores}}.
SCORE = """
import json, sys
import bentoml
import numpy as np
from fraud.config import load_ab_config
from fraud.serving.models import resolve_arms
from fraud.schema import FEATURE_NAMES
rows = json.load(sys.stdin)
X = np.array([[r[f] for f in FEATURE_NAMES] for r in rows], dtype=np.float64)
out = {}
for arm, m in resolve_arms(load_ab_config()).items():
    p = bentoml.sklearn.load_model(m.tag).predict_proba(X)[:, 1]
    out[arm] = {"tag": m.tag, "threshold": m.threshold, "scores": p.tolist()}
print(json.dumps(out))
"""


def _normal(rng: random.Random) -> dict[str, float]:
    """One draw of the reference load test's `predict_normal` body."""
    return {"amount": round(rng.uniform(10, 200), 2), "hour": rng.randint(8, 20),
            "merchant_risk": round(rng.uniform(0.0, 0.3), 2),
            "card_age_days": rng.randint(90, 1500), "distance_km": round(rng.uniform(0, 20), 1),
            "num_recent_txns": rng.randint(0, 5), "is_international": 0}


def _suspicious(rng: random.Random) -> dict[str, float]:
    """One draw of the reference load test's `predict_suspicious` body."""
    return {"amount": round(rng.uniform(500, 5000), 2), "hour": rng.choice([0, 1, 2, 3, 23]),
            "merchant_risk": round(rng.uniform(0.7, 1.0), 2),
            "card_age_days": rng.randint(1, 30), "distance_km": round(rng.uniform(200, 1000), 1),
            "num_recent_txns": rng.randint(8, 20), "is_international": 1}


@pytest.fixture(scope="module")
def scored(trained_store: Store) -> dict[str, Any]:
    rng = random.Random(0)
    rows = [SUSPICIOUS, ORDINARY, *(_normal(rng) for _ in range(DRAWS)),
            *(_suspicious(rng) for _ in range(DRAWS))]
    out = subprocess.run([PYTHON, "-c", SCORE], cwd=ROOT, env=trained_store.env(),
                         input=json.dumps(rows), capture_output=True, text=True, check=True,
                         timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("arm", ["model_a", "model_b"])
def test_the_readme_example_is_flagged_and_an_ordinary_one_is_not(scored, arm):
    model = scored[arm]
    suspicious, ordinary = model["scores"][:2]
    assert suspicious >= model["threshold"], (model["tag"], suspicious, model["threshold"])
    assert ordinary < model["threshold"], (model["tag"], ordinary, model["threshold"])


@pytest.mark.parametrize("arm", ["model_a", "model_b"])
def test_the_reference_load_profiles_are_told_apart(scored, arm):
    model = scored[arm]
    normal = model["scores"][2:2 + DRAWS]
    suspicious = model["scores"][2 + DRAWS:]
    flagged_normal = sum(p >= model["threshold"] for p in normal) / DRAWS
    flagged_suspicious = sum(p >= model["threshold"] for p in suspicious) / DRAWS
    assert flagged_normal <= 0.01, (model["tag"], flagged_normal)
    assert flagged_suspicious >= 0.95, (model["tag"], flagged_suspicious)


@pytest.mark.parametrize("arm", ["model_a", "model_b"])
def test_test_split_auc_stays_realistic(trained_store, arm, scored):
    # Not separable (the reference's generator gave ROC AUC 1.000), well above the gate's floor.
    out = subprocess.run(
        [PYTHON, "-c", "import bentoml, json, sys; print(json.dumps(bentoml.models.get("
                       "sys.argv[1]).info.metadata['metrics']['test']['roc_auc']))",
         scored[arm]["tag"]],
        cwd=ROOT, env=trained_store.env(), capture_output=True, text=True, check=True)
    assert 0.90 <= json.loads(out.stdout.strip().splitlines()[-1]) <= 0.99

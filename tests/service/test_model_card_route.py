"""GET /model-card on a real `bentoml serve`: Markdown by default, JSON with Accept, open,
describing the models actually served; and the published page (description, no /noop)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from helpers import ROOT, Server, Store, serve

from fraud.schema import ARMS, EXAMPLE_TRANSACTION

pytestmark = pytest.mark.service
TIMEOUT = 30


def _get(server: Server, path: str, **headers: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers=headers, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def served(server: Server) -> dict[str, str]:
    """arm -> tag of the models the server loaded (GET /health)."""
    health = _get(server, "/health")
    assert health.status_code == 200, health.text
    return health.json()["models"]


@pytest.fixture(scope="module")
def source(served: dict[str, str]) -> str:
    """`build` when reports/build/model_card.json describes exactly the served models (an
    earlier `make build` in this checkout, e.g. the container test's, made it), else the
    service must have made one at start-up."""
    card = ROOT / "reports" / "build" / "model_card.json"
    if card.exists():
        bundled = {m["arm"]: m["tag"] for m in json.loads(card.read_text())["models"]}
        if bundled == served:
            return "build"
    return "startup"


def test_model_card_markdown_by_default(server: Server, served: dict[str, str],
                                        source: str) -> None:
    answer = _get(server, "/model-card")
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/markdown")
    assert answer.headers["x-model-card-source"] == source
    text = answer.text
    assert text.startswith("# Model card: fraudserve\n")
    assert f"Source: {source}." in text
    for heading in ("## Intended use", "## Data and splits", "## Metrics", "## Thresholds",
                    "## Caveats"):
        assert f"\n{heading}\n" in text
    for arm, tag in served.items():
        assert f"`{tag}`" in text and f"- {arm}: " in text
    assert text.count("Gate: passed") == len(ARMS)
    assert "| slice: night |" in text


def test_model_card_json_with_accept(server: Server, served: dict[str, str],
                                     source: str) -> None:
    answer = _get(server, "/model-card", Accept="application/json")
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["x-model-card-source"] == source
    card: dict[str, Any] = answer.json()
    assert card["source"] == source
    assert {m["arm"]: m["tag"] for m in card["models"]} == served
    assert card["gate"]["passed"] is True and card["gate"]["failed"] == 0
    for m in card["models"]:
        assert m["gate"]["judged"] and m["gate"]["passed"]
        assert 0 < m["threshold"] < 1 and m["gate"]["threshold"] == m["threshold"]
        assert m["gate"]["overall"]["roc_auc"] >= 0.85
        assert m["gate"]["slices"] and all("num_samples" in s
                                           for s in m["gate"]["slices"].values())
    assert card["data"]["spec"]["source"] and card["data"]["same_for_all_models"] is True
    assert card["caveats"]


def test_model_card_is_documented(server: Server) -> None:
    op = _get(server, "/docs.json").json()["paths"]["/model-card"]["get"]
    assert {"200", "503"} <= set(op["responses"])
    assert set(op["responses"]["200"]["content"]) == {"text/markdown", "application/json"}
    assert op["security"] == []  # open: no key


def test_swagger_description_is_ours_and_noop_is_off(server: Server) -> None:
    doc = _get(server, "/docs.json").json()
    ours = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["description"]
    assert doc["info"]["description"] == ours
    assert "created with BentoML" not in doc["info"]["description"]
    assert "/noop" not in doc["paths"]
    noop = requests.post(f"{server.url}/noop", json=EXAMPLE_TRANSACTION, timeout=TIMEOUT)
    assert noop.status_code == 404, noop.text[:300]


def test_noop_on_for_the_benchmark(trained_store: Store, gate_report: Path,
                                   tmp_path: Path) -> None:
    """FRAUDSERVE_NOOP=1 (loadtests/bench/driver.py sets it): POST /noop validates and answers."""
    with serve(trained_store, tmp_path, workers=1, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_NOOP="1") as srv:
        ok = requests.post(f"{srv.url}/noop", json=EXAMPLE_TRANSACTION, timeout=TIMEOUT)
        bad = requests.post(f"{srv.url}/noop", json={**EXAMPLE_TRANSACTION, "hour": 99},
                            timeout=TIMEOUT)
        paths = _get(srv, "/docs.json").json()["paths"]
    assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
    assert bad.status_code == 400
    assert "post" in paths["/noop"]

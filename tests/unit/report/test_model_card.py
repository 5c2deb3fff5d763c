"""fraud/model_card.py on constructed metadata and gate reports (no store, no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fraud import model_card as mc
from fraud.api.views import wants_json
from fraud.report.card import to_markdown

SPEC = {"source": "generator", "label_column": "is_fraud", "seed": 7,
        "generator": {"n_rows": 1000, "fraud_rate": 0.02, "shift": 0.0},
        "validation_fraction": 0.2, "test_fraction": 0.2}
HASHES = {"train": "a" * 64, "validation": "b" * 64, "test": "c" * 64}


def _metrics(f1: float, n: int = 200, fraud: int = 40) -> dict[str, Any]:
    return {"num_samples": n, "num_fraud": fraud, "flag_rate": 0.2, "precision": 0.9,
            "recall": 0.8, "f1": f1, "roc_auc": 0.95, "average_precision": 0.9}


def _meta(role: str, threshold: float, **extra: Any) -> dict[str, Any]:
    return {"role": role, "features": ["amount", "hour"], "threshold": threshold,
            "threshold_rule": "max_f1", "estimator": "random_forest",
            "metrics": {"test": _metrics(0.81), "validation": _metrics(0.80)},
            "mlflow_run_id": f"run-{role}", "mlflow_registered_model": "fraud-detector",
            "mlflow_model_version": "3", "mlflow_tracking_uri": "https://u:secret@mlflow",
            "split_hashes": HASHES, "split_sizes": {"train": 600, "validation": 200,
                                                   "test": 200},
            "data_spec": SPEC, "drift_reference": {"amount": {}},
            "library_versions": {"scikit-learn": "1.9.1"}, **extra}


MODELS = {"model_a": {"tag": "rf:1", "metadata": _meta("champion", 0.7)},
          "model_b": {"tag": "hgb:2", "metadata": _meta("challenger", 0.5)}}


def _check(tag: str, name: str, value: float, floor: float, passed: bool = True) -> dict:
    return {"model": tag, "arm": "x", "name": name, "value": value, "floor": floor, "op": ">=",
            "passed": passed, "detail": "", "gap": value - floor}


def _report(passed: bool = True) -> dict[str, Any]:
    models = {}
    for arm, m in MODELS.items():
        models[m["tag"]] = {
            "arm": arm, "role": m["metadata"]["role"], "passed": passed, "failures": [],
            "threshold": m["metadata"]["threshold"], "data_hashes": HASHES,
            "evaluation": {"overall": _metrics(0.82),
                           "slices": {"night": _metrics(0.9, 50, 35),
                                      "tiny": _metrics(float("nan"), 5, 1)}}}
    checks = [_check(t, "f1", 0.82, 0.7) for t in models]
    checks += [_check(t, "slice:night:f1", 0.9, 0.6) for t in models]
    if not passed:
        checks.append(_check("hgb:2", "roc_auc", 0.80, 0.85, passed=False))
    return {"passed": passed, "models": models, "checks": checks, "errors": []}


def test_card_has_each_model_with_training_and_gate_metrics() -> None:
    card = mc.build(MODELS, _report(), generated_by="test")
    json.dumps(card, allow_nan=False)  # JSON-clean: the NaN slice metric is None
    assert mc.tags(card) == {"model_a": "rf:1", "model_b": "hgb:2"}
    a = card["models"][0]
    assert (a["arm"], a["role"], a["threshold"], a["threshold_rule"]) == (
        "model_a", "champion", 0.7, "max_f1")
    assert a["training_metrics"]["test"]["f1"] == 0.81
    assert a["mlflow"] == {"run_id": "run-champion", "registered_model": "fraud-detector",
                           "model_version": "3"}
    assert a["gate"]["passed"] is True and a["gate"]["overall"]["f1"] == 0.82
    assert a["gate"]["slices"]["night"]["num_samples"] == 50
    assert a["gate"]["slices"]["tiny"]["f1"] is None
    assert [c["name"] for c in a["gate"]["checks"]] == ["f1", "slice:night:f1"]
    assert card["data"]["spec"] == SPEC and card["data"]["same_for_all_models"] is True
    assert card["gate"] == {"passed": True, "checks": 4, "failed": 0, "errors": []}


def test_card_never_shows_the_tracking_uri() -> None:
    assert "secret" not in json.dumps(mc.build(MODELS, _report()))


def test_caveats_name_synthetic_data_and_unjudged_slices() -> None:
    caveats = mc.build(MODELS, _report())["caveats"]
    assert any("synthetic" in c and "seed 7" in c for c in caveats)
    assert any("rf:1" in c and "reported only: tiny." in c for c in caveats)
    assert not any("night" in c for c in caveats)  # night was held to a floor


def test_without_a_gate_report_the_card_says_nothing_was_verified() -> None:
    card = mc.build(MODELS, None)
    assert card["gate"] is None
    assert all(m["gate"] == {"judged": False, "passed": None, "why": "no gate report"}
               for m in card["models"])
    assert any("No gate report" in c for c in card["caveats"])
    text = to_markdown(card)
    assert "Gate: not judged (no gate report)." in text


def test_a_model_missing_from_the_report_is_not_judged() -> None:
    models = {**MODELS, "model_b": {"tag": "hgb:other", "metadata": _meta("challenger", 0.5)}}
    card = mc.build(models, _report())
    b = card["models"][1]
    assert b["gate"]["judged"] is False
    assert any("hgb:other (model_b) is not in the gate report" in c for c in card["caveats"])


def test_a_failed_gate_shows_in_card_and_markdown() -> None:
    card = mc.build(MODELS, _report(passed=False))
    assert card["gate"]["failed"] == 1
    assert any("did not pass" in c for c in card["caveats"])
    text = to_markdown(card)
    assert "- FAILED roc_auc: 0.8000 (floor >= 0.8500)" in text
    assert "| model_b | challenger | `hgb:2` | random_forest | 0.5000 | max_f1 | FAILED |" in text


def test_models_on_different_data_are_flagged() -> None:
    other = _meta("challenger", 0.5, data_spec={**SPEC, "seed": 8})
    card = mc.build({**MODELS, "model_b": {"tag": "hgb:2", "metadata": other}}, _report())
    assert card["data"]["same_for_all_models"] is False
    assert any("different data" in c for c in card["caveats"])


def test_threshold_differing_from_the_judged_one_is_a_caveat() -> None:
    report = _report()
    report["models"]["rf:1"]["threshold"] = 0.6
    assert any("judged threshold 0.6" in c for c in mc.build(MODELS, report)["caveats"])


def test_markdown_has_every_section_and_slice_rows() -> None:
    text = to_markdown({**mc.build(MODELS, _report(), generated_by="test"),
                           "source": "build"})
    for heading in ("# Model card: fraudserve", "## Intended use", "## Models",
                    "## Data and splits", "## Metrics", "## Thresholds", "## Caveats"):
        assert f"\n{heading}\n" in f"\n{text}"
    assert "Source: build." in text
    assert "| slice: night | 50 | 35 | 0.2000 | 0.9000 | 0.8000 | 0.9000 |" in text
    assert "| slice: tiny | 5 | 1 | 0.2000 | 0.9000 | 0.8000 | n/a |" in text
    assert "| test | 200 | `cccccccccccccccc` |" in text
    assert "- model_a: 0.7000 (max_f1)" in text


def test_served_card_prefers_the_bundled_one_only_for_the_same_models(tmp_path: Path) -> None:
    report = tmp_path / "gate.json"
    report.write_text(json.dumps(_report()))
    card_file = tmp_path / "card.json"
    bundled = mc.build(MODELS, _report(), generated_by="make build")
    card_file.write_text(json.dumps(bundled))
    card, source = mc.for_served(MODELS, card_file, report)
    assert (card, source) == (bundled, "build")

    retrained = {**MODELS, "model_a": {"tag": "rf:9", "metadata": _meta("champion", 0.7)}}
    card, source = mc.for_served(retrained, card_file, report)
    assert source == "startup" and mc.tags(card)["model_a"] == "rf:9"
    assert card["models"][0]["gate"]["judged"] is False  # rf:9 was never gated


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
def test_served_card_is_made_when_the_file_is_missing_or_unreadable(
        tmp_path: Path, content: str | None) -> None:
    card_file = tmp_path / "card.json"
    if content is not None:
        card_file.write_text(content)
    card, source = mc.for_served(MODELS, card_file, tmp_path / "no-report.json")
    assert source == "startup" and card["gate"] is None
    assert "start-up" in card["generated_by"]


@pytest.mark.parametrize(("accept", "json_wanted"), [
    (None, False),
    ("", False),
    ("*/*", False),
    ("text/markdown", False),
    ("application/json", True),
    ("application/json, text/markdown;q=0.5", True),
    ("text/markdown, application/json;q=0.9", False),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
    ("application/*", True),
    ("application/json;q=0", False),
    ("text/*;q=0.5, application/json;q=0.6", True),
])
def test_accept_negotiation_defaults_to_markdown(accept: str | None, json_wanted: bool) -> None:
    assert wants_json(accept) is json_wanted


def test_the_card_shows_the_schema_the_periods_and_the_threshold_rule() -> None:
    schema = [{"name": "amount", "type": "number", "min": 0.0, "min_inclusive": False},
              {"name": "channel", "type": "category", "values": ["web", "app"],
               "unseen": "other"}]
    choice = {"rule": "cost", "settings": {"decline_fixed": 5.0},
              "chosen": {"threshold": 0.42, "precision": 0.5, "recall": 0.9, "f1": 0.64,
                         "alerts_per_1000": 12.0, "cost_per_1000": 88.5},
              "curve": [{"threshold": t / 10, "precision": 0.5, "recall": 0.5, "f1": 0.5,
                         "alerts_per_1000": 10.0, "cost_per_1000": 90.0} for t in range(9)]}
    ranges = {s: {"from": f"2025-0{i + 1}-01T00:00:00+00:00",
                  "to": f"2025-0{i + 1}-28T00:00:00+00:00"}
              for i, s in enumerate(("train", "validation", "test"))}
    extra = {"schema": schema, "schema_hash": "f" * 64, "threshold_rule": "cost",
             "threshold_choice": choice, "split_ranges": ranges,
             "data_spec": {**SPEC, "source": "csv", "split": "time"}}
    models = {arm: {"tag": m["tag"], "metadata": {**m["metadata"], **extra}}
              for arm, m in MODELS.items()}
    card = mc.build(models, _report())
    assert card["models"][0]["schema"] == schema
    assert card["models"][0]["threshold_choice"]["chosen"]["threshold"] == 0.42
    assert card["data"]["split_ranges"] == ranges
    assert any("split by time" in c for c in card["caveats"])
    assert any("minimise the expected cost" in c for c in card["caveats"])
    text = to_markdown(card)
    assert "| channel | category | web, app, any other: 'other' |" in text
    assert "| amount | number | > 0 |" in text
    assert "| test | 200 | 2025-03-01T00:00:00+00:00 | 2025-03-28T00:00:00+00:00 |" in text
    assert "- model_a: 0.7000 (cost, decline_fixed 5.0)" in text
    assert "Validation curve of model_a (last row: the chosen threshold):" in text
    assert "| 0.4200 | 0.5000 | 0.9000 | 0.6400 | 12.0000 | 88.5000 |" in text

"""The operations routes' answers as pure functions: GET /ab-stats (the public view drops the
salt and thresholds, the admin view keeps all), /health, /drift and /model-card."""

from __future__ import annotations

import copy
import json

from fraud.api.views import ab_stats_view, card_response, drift_view, health_view
from fraud.serving.card import ServedCard

REPORT = {
    "model_a": {"total_predictions": 10, "threshold": 0.735, "model_tag": "fraud_rf:a"},
    "model_b": {"total_predictions": 12, "threshold": 0.48, "model_tag": "fraud_hgb:b"},
    "sample_ratio": {"p_value": 0.4},
    "experiment": {"id": 3, "salt": "fraudserve-ab-1", "configured_share": 0.5},
    "paired": {"same_flag_rate": {"flag_rate": 0.02, "threshold_a": 0.7, "threshold_b": 0.5,
                                  "recall_a": 0.8, "recall_b": 0.81}},
}


def test_public_view_drops_exactly_the_salt_and_thresholds() -> None:
    before = copy.deepcopy(REPORT)
    public = ab_stats_view(REPORT, admin=False)
    assert before == REPORT  # the report itself is untouched
    assert public["model_a"] == {"total_predictions": 10, "model_tag": "fraud_rf:a"}
    assert public["model_b"] == {"total_predictions": 12, "model_tag": "fraud_hgb:b"}
    assert public["experiment"] == {"id": 3, "configured_share": 0.5}
    assert public["paired"]["same_flag_rate"] == {"flag_rate": 0.02, "recall_a": 0.8,
                                                  "recall_b": 0.81}
    assert public["sample_ratio"] == REPORT["sample_ratio"]


def test_public_view_hides_explorations_settings_and_spending() -> None:
    report = {**REPORT, "exploration": {
        "enabled": True, "rate": 0.01, "max_amount": 100.0, "daily_budget": 500.0,
        "today": {"explored": 3, "budget_left": 120.0}, "per_arm": {"model_a": {"explored": 3}}}}
    public = ab_stats_view(report, admin=False)
    assert public["exploration"] == {"enabled": True, "per_arm": {"model_a": {"explored": 3}}}
    assert ab_stats_view(report, admin=True)["exploration"]["rate"] == 0.01


def test_admin_view_is_the_whole_report() -> None:
    assert ab_stats_view(REPORT, admin=True) == REPORT


def test_missing_or_null_blocks_are_fine() -> None:
    report = {"model_a": {"threshold": 0.7}, "model_b": {}, "experiment": {"salt": "s"},
              "paired": {"same_flag_rate": None}}
    assert ab_stats_view(report, admin=False) == {
        "model_a": {}, "model_b": {}, "experiment": {}, "paired": {"same_flag_rate": None}}
    assert ab_stats_view({}, admin=False) == {}


TAGS = {"model_a": "fraud_rf:a", "model_b": "fraud_hgb:b"}


def test_health_is_healthy_once_gated_and_says_what_the_router_loaded() -> None:
    body, status = health_view(None, ["fraud_hgb:b", "fraud_rf:a"], TAGS, 12.345)
    assert status == 200
    assert body == {"status": "healthy", "models_loaded": True, "models": TAGS,
                    "uptime_seconds": 12.3}
    assert list(body) == ["status", "models_loaded", "models", "uptime_seconds"]


def test_health_says_when_the_router_loaded_other_models_or_did_not_answer() -> None:
    assert health_view(None, ["fraud_rf:old", "fraud_hgb:b"], TAGS, 1)[0]["models_loaded"] is False
    assert health_view(None, [], TAGS, 1)[0]["models_loaded"] is False


def test_health_is_503_not_ready_with_the_reason_until_the_gate_passes() -> None:
    body, status = health_view("model fraud_rf:a FAILED the gate (f1)", list(TAGS.values()),
                               TAGS, 0.04)
    assert status == 503
    assert body == {"status": "not_ready", "models_loaded": True, "models": TAGS,
                    "uptime_seconds": 0.0, "reason": "model fraud_rf:a FAILED the gate (f1)"}


def test_drift_without_any_reference_is_503_saying_retrain() -> None:
    for arms in ({}, None):
        answer = drift_view(arms)
        assert answer.status_code == 503
        assert json.loads(answer.body) == {
            "error": "no model carries a drift reference: retrain (make train)"}


CARD = ServedCard({"card_version": 1, "models": []}, "build", markdown="# Model card\n")


def test_the_card_is_markdown_unless_json_is_preferred() -> None:
    text = card_response(CARD, None)
    assert text.status_code == 200 and text.body == b"# Model card\n"
    assert text.headers["content-type"] == "text/markdown; charset=utf-8"
    assert text.headers["x-model-card-source"] == "build"
    assert text.headers["vary"] == "Accept, Authorization"  # the view depends on the key
    as_json = card_response(CARD, "application/json")
    assert json.loads(as_json.body) == {"card_version": 1, "models": [], "source": "build"}
    assert as_json.headers["x-model-card-source"] == "build"


def test_no_card_is_503_saying_why() -> None:
    answer = card_response(ServedCard(None, "none", "KeyError: 'metrics'"), "application/json")
    assert answer.status_code == 503
    assert json.loads(answer.body) == {"error": "no model card: KeyError: 'metrics'"}

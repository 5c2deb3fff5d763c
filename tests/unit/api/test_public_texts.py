"""Public answers name no server directory (issue 23: /health showed filesystem paths): an
absolute path keeps its last part; the log keeps the whole text."""

from __future__ import annotations

import json

from fraud.api.errors import NotReady, api_error, without_paths
from fraud.api.views import card_response, health_view
from fraud.serving.card import ServedCard
from fraud.serving.readiness import Ungated

PROBLEM = "no gate report at /srv/secret-layout/reports/gate/gate_report.json: run `make gate`"


def test_a_path_keeps_its_last_part_and_urls_stay() -> None:
    assert without_paths(PROBLEM) == "no gate report at gate_report.json: run `make gate`"
    for text in ("model fraud_rf:abc FAILED the gate (recall 0.51 < 0.7)",
                 "see https://host/a/b", "sqlite:///data/ledger.sqlite", "a/b relative"):
        assert without_paths(text) == text


def test_health_the_not_ready_answer_and_the_card_problem_name_no_directory() -> None:
    body, status = health_view(PROBLEM, [], {"model_a": "rf:1"}, 1.0)
    assert status == 503 and "/srv" not in json.dumps(body)
    assert "gate_report.json" in body["reason"]
    refused = api_error(Ungated(f"service not ready: {PROBLEM}"))
    assert isinstance(refused, NotReady) and "/srv" not in str(refused)
    card = card_response(ServedCard(None, "none", f"FileNotFoundError: {PROBLEM}"), None)
    assert card.status_code == 503 and b"/srv" not in card.body

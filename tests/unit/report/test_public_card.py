"""GET /model-card without an admin key (issue 23: it published each model's threshold, the
decision edge /ab-stats keeps for admin): the public card has no threshold, no validation
curve and no caveat quoting one; with the key, the whole card."""

from __future__ import annotations

import json
from typing import Any

from test_model_card import MODELS, _report

from fraud import model_card as mc
from fraud.api.views import card_response
from fraud.report.card import to_markdown
from fraud.serving.card import ServedCard

CHOICE = {"rule": "max_f1", "settings": {}, "chosen": {"threshold": 0.7123, "f1": 0.8},
          "curve": [{"threshold": 0.9, "f1": 0.5}, {"threshold": 0.7123, "f1": 0.8}]}


def card() -> dict[str, Any]:
    report = _report()
    report["models"]["rf:1"]["threshold"] = 0.6  # a caveat quotes both thresholds
    built = mc.build(MODELS, report)
    for m in built["models"]:
        m["threshold_choice"] = CHOICE
    return built


def test_the_public_card_has_no_threshold() -> None:
    full = card()
    public = mc.public(full)
    assert all(m["threshold"] is not None for m in full["models"])  # the original is kept
    for m in public["models"]:
        assert m["threshold"] is None and m["gate"]["threshold"] is None
        assert m["threshold_choice"] == {"rule": "max_f1", "settings": {}}
    assert "admin key" in public["thresholds_hidden"]
    text = json.dumps(public) + to_markdown(public)
    for value in ("0.7123", "0.7", "0.6", "0.9"):
        assert f'"threshold": {value}' not in text and f"threshold {value}" not in text
    assert "Validation curve" not in to_markdown(public)
    assert "Not shown:" in to_markdown(public)
    assert any("judged another threshold" in c for c in public["caveats"])


def test_the_route_answers_the_public_card_unless_admin() -> None:
    full = card()
    served = ServedCard(full, "startup", markdown=to_markdown(full),
                        public_markdown=to_markdown(mc.public(full)))
    public = json.loads(card_response(served, "application/json", admin=False).body)
    admin = json.loads(card_response(served, "application/json", admin=True).body)
    assert [m["threshold"] for m in public["models"]] == [None, None]
    assert [m["threshold"] for m in admin["models"]] == [0.7, 0.5]
    assert "Validation curve" in card_response(served, None, admin=True).body.decode()
    assert "Validation curve" not in card_response(served, None, admin=False).body.decode()
    assert "Authorization" in card_response(served, None, admin=False).headers["vary"]

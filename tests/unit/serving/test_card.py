"""The served models' card: the bundled one when it describes them, else one made at start-up,
and a card that cannot be made is a reason, not a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraud import model_card
from fraud.experiment.decisions import ArmModel
from fraud.serving import card as served
from fraud.serving.card import ServedCard, served_card

META = {"role": "champion", "features": ["amount"], "threshold": 0.7,
        "metrics": {"test": {"num_samples": 10, "f1": 0.8}}}
MODELS = {"model_a": ArmModel("model_a", "rf:1", 0.7, META),
          "model_b": ArmModel("model_b", "hgb:2", 0.5, {**META, "role": "challenger"})}


def test_the_bundled_card_is_served_when_it_describes_these_models(tmp_path: Path) -> None:
    meta = {arm: {"tag": m.tag, "metadata": m.metadata} for arm, m in MODELS.items()}
    bundled = model_card.build(meta, None, generated_by="make build")
    (tmp_path / "card.json").write_text(json.dumps(bundled))
    got = served_card(MODELS, tmp_path / "card.json", tmp_path / "no-report.json")
    assert (got.card, got.source, got.problem) == (bundled, "build", None)
    assert got.as_json() == {**bundled, "source": "build"}
    assert got.markdown.startswith("#") and "rf:1" in got.markdown


def test_without_a_bundled_card_one_is_made_at_start_up(tmp_path: Path) -> None:
    got = served_card(MODELS, tmp_path / "missing.json", tmp_path / "no-report.json")
    assert got.source == "startup" and got.problem is None
    assert model_card.tags(got.card) == {"model_a": "rf:1", "model_b": "hgb:2"}
    assert "start-up" in got.card["generated_by"]


def test_a_card_that_cannot_be_made_is_a_reason(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object) -> None:
        raise KeyError("metrics")

    monkeypatch.setattr(served.model_card, "for_served", broken)
    got = served_card(MODELS)
    assert got == ServedCard(None, "none", "KeyError: 'metrics'")
    assert got.markdown == "" and "model card failed" in caplog.text


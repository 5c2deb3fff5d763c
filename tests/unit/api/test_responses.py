"""POST /predict_batch's models sized by max_batch_rows, and the router's explanation and drift
entries turned into POST /explain's and GET /drift's answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.ensemble import RandomForestClassifier

from fraud.api.errors import NotExplainable
from fraud.api.responses import (
    ExplainResponse,
    arms_to_explain,
    batch_models,
    drift_entries,
    explain_response,
    explanation_entries,
)
from fraud.api.views import drift_view
from fraud.config import DriftSettings, GeneratorConfig
from fraud.drift import DriftMonitor, build_reference
from fraud.experiment.decisions import ArmModel
from fraud.explain import TreeExplainer
from fraud.schema import EXAMPLE_TRANSACTION, FEATURE_NAMES, Prediction
from training.data import generate

MODELS = {"model_a": ArmModel("model_a", "fraud_rf:a", 0.6, {}),
          "model_b": ArmModel("model_b", "fraud_lr:b", 0.4, {})}


def test_a_batch_holds_one_to_max_rows_transactions() -> None:
    request, response = batch_models(3)
    assert (request.__name__, response.__name__) == ("BatchRequest", "BatchResponse")
    ok = request.model_validate({"transactions": [EXAMPLE_TRANSACTION] * 3})
    assert len(ok.transactions) == 3
    for n in (0, 4):
        with pytest.raises(ValidationError):
            request.model_validate({"transactions": [EXAMPLE_TRANSACTION] * n})
    field = request.model_json_schema()["properties"]["transactions"]
    assert field["maxItems"] == 3 and field["description"].startswith("1 to 3 transactions")
    assert field["examples"][0][0] == EXAMPLE_TRANSACTION
    assert response.model_fields["results"].annotation == list[Prediction]


def test_both_arms_are_explained_only_when_asked_the_users_first() -> None:
    assert arms_to_explain("model_b", None) == ["model_b"]
    assert arms_to_explain("model_b", "false") == ["model_b"]
    for yes in ("true", "TRUE", "1", "yes"):
        assert arms_to_explain("model_b", yes) == ["model_b", "model_a"]
    assert arms_to_explain("model_a", "true") == ["model_a", "model_b"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    df = generate(GeneratorConfig(n_rows=2000, fraud_rate=0.2), seed=3)
    return df[list(FEATURE_NAMES)].to_numpy(np.float64), df["is_fraud"].to_numpy()


@pytest.fixture(scope="module")
def explainer(data: Any) -> TreeExplainer:
    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(*data)
    return TreeExplainer(forest, top=2)


def test_an_explainable_model_gives_an_entry_a_linear_one_says_why_not(
        data: Any, explainer: TreeExplainer) -> None:
    row = data[0][0]
    entries = explanation_entries(row, ["model_b", "model_a"], MODELS,
                                  {"model_a": explainer, "model_b": None})
    assert entries[0] == {"model_version": "model_b",
                          "unsupported": "model_b's model fraud_lr:b is not a tree ensemble"}
    a = entries[1]
    assert (a["model_version"], a["model_tag"], a["threshold"]) == ("model_a", "fraud_rf:a", 0.6)
    assert a["is_fraud"] == (a["fraud_probability"] >= 0.6) and len(a["reasons"]) == 2
    with pytest.raises(NotExplainable, match="model_b's model fraud_lr:b is not a tree"):
        explain_response("model_b", entries)
    answer = explain_response("model_a", entries[1:])
    assert isinstance(answer, ExplainResponse) and answer.model_version == "model_a"


def test_drift_entries_leave_out_arms_without_a_window(data: Any) -> None:
    window = DriftMonitor(build_reference(data[0]), DriftSettings())
    window.observe(data[0][:100])
    entries = drift_entries(MODELS, {"model_a": window, "model_b": None})
    assert list(entries) == ["model_a"] and entries["model_a"]["model_tag"] == "fraud_rf:a"
    assert entries["model_a"]["rows"] == 100 and entries["model_a"]["ready"] is False
    assert drift_view(entries) == {"arms": entries}  # GET /drift's body
    assert drift_entries(MODELS, {"model_a": None, "model_b": None}) == {}

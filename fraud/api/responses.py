"""Request and response models beyond fraud/schema.py's: POST /predict_batch's (sized by
max_batch_rows), POST /explain's and GET /drift's, and the builders of their entries from
fraud.explain and fraud.drift.

The service only wires routes to these; the field descriptions are what the Swagger page shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fraud.api.errors import NotExplainable
from fraud.drift import DriftMonitor
from fraud.experiment.decisions import ArmModel
from fraud.explain import Explanation, TreeExplainer
from fraud.schema import ARMS, EXAMPLE_TRANSACTION, Arm, Prediction, Transaction

# The batch example's second row: an ordinary transaction beside the suspicious one.
NORMAL_EXAMPLE = {**EXAMPLE_TRANSACTION, "user_id": "user_456", "amount": 12.5, "hour": 14,
                  "merchant_risk": 0.1, "card_age_days": 900, "distance_km": 3,
                  "num_recent_txns": 1, "is_international": 0}


def batch_models(max_rows: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """(BatchRequest, BatchResponse) of POST /predict_batch for up to `max_rows` rows."""

    class BatchRequest(BaseModel):
        """A bulk of transactions, scored in order."""

        transactions: list[Transaction] = Field(
            ..., min_length=1, max_length=max_rows,
            description=f"1 to {max_rows} transactions (configs/ab.yaml max_batch_rows).",
            examples=[[EXAMPLE_TRANSACTION, NORMAL_EXAMPLE]])

    class BatchResponse(BaseModel):
        """One result per transaction, in request order."""

        results: list[Prediction]

    return BatchRequest, BatchResponse


class ReasonCode(BaseModel):
    """One feature's push on the score, readable."""

    feature: str = Field(..., description="Feature name, as in the /predict body.")
    value: float = Field(..., description="The transaction's value of the feature.")
    contribution: float = Field(..., description="Its contribution, on the explanation's scale.")
    description: str = Field(..., description="What the feature is (fraud/schema.py).")
    text: str = Field(..., description="Readable reason code.",
                      examples=["card is 15 days old: +0.21"])


class ModelExplanation(BaseModel):
    """One model's score of the transaction, split into a base value plus contributions."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: Arm = Field(..., description="A/B arm of the model explained.")
    model_tag: str = Field(..., description="BentoML model tag.")
    method: Literal["tree_shap_path_dependent"] = "tree_shap_path_dependent"
    scale: Literal["probability", "log_odds"] = Field(
        ..., description="What base_value and contributions add up to: the forest's "
                         "probability, or the boosting model's log-odds (exact there; its "
                         "probability is the sigmoid of the sum).")
    base_value: float = Field(..., description="The model's mean output over training rows.")
    contributions: dict[str, float] = Field(
        ..., description="Per feature, in feature order; base_value + their sum = output.")
    output: float = Field(..., description="The model's output on `scale`.")
    fraud_probability: float = Field(..., description="P(fraud), as /predict reports it.")
    threshold: float = Field(..., description="The model's decision threshold.")
    is_fraud: bool = Field(..., description="fraud_probability >= threshold.")
    reasons: list[ReasonCode] = Field(..., description="The largest |contributions|, first.")


class ExplainResponse(BaseModel):
    """POST /explain: the user's arm model, and with ?both=true the other arm's too."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: Arm = Field(..., description="The arm this user is assigned to.")
    explanations: list[ModelExplanation] = Field(
        ..., description="The assigned arm first; both arms with ?both=true.")


class FeatureDrift(BaseModel):
    """One feature of one arm's live window against its model's training reference."""

    model_config = ConfigDict(extra="forbid")

    psi: float | None = Field(..., description="Population stability index (decile bins).")
    psi_level: Literal["stable", "moderate", "major"] | None = Field(
        ..., description="Below 0.1 stable, below psi_threshold moderate, else major.")
    psi_critical: float | None = Field(
        ..., description="PSI reached by chance with probability alpha at this window size.")
    ks: float | None = Field(..., description="Two-sample Kolmogorov-Smirnov statistic.")
    drift: bool | None = Field(
        ..., description="psi >= psi_threshold, psi > psi_critical or ks > ks_critical; "
                         "null below min_rows.")


class ArmDrift(BaseModel):
    """One arm's drift report."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_tag: str
    rows: int = Field(..., description="Live rows in the window now.")
    window: int = Field(..., description="Rows kept (the newest).")
    min_rows: int = Field(..., description="Rows needed before a verdict.")
    ready: bool = Field(..., description="rows >= min_rows.")
    psi_threshold: float
    alpha: float = Field(..., description="False-alarm rate of each test, per feature.")
    ks_critical: float | None = Field(..., description="KS critical value at this window size.")
    drift: bool | None = Field(..., description="Any feature drifting; null below min_rows.")
    features: dict[str, FeatureDrift]


class DriftResponse(BaseModel):
    """GET /drift: both arms."""

    arms: dict[Arm, ArmDrift]


def model_explanation(arm: Arm, tag: str, threshold: float, e: Explanation) -> ModelExplanation:
    """The response entry of one model's explanation."""
    return ModelExplanation(
        model_version=arm, model_tag=tag, scale=e.scale, base_value=e.base_value,
        contributions=e.contributions, output=e.output, fraud_probability=e.probability,
        threshold=threshold, is_fraud=e.probability >= threshold,
        reasons=[ReasonCode(feature=r.feature, value=r.value, contribution=r.contribution,
                            description=r.description, text=r.text) for r in e.reasons],
    )


def arm_drift(tag: str, report: dict[str, Any]) -> ArmDrift:
    """The response entry of one arm from `DriftMonitor.report()`."""
    return ArmDrift(model_tag=tag, **report)


def arms_to_explain(arm: Arm, both: str | None) -> list[Arm]:
    """The user's arm, and with ?both=true (1, yes) the other arm after it."""
    if (both or "false").lower() in ("1", "true", "yes"):
        return [arm, *(a for a in ARMS if a != arm)]
    return [arm]


def explanation_entries(row: np.ndarray, arms: Sequence[str], models: Mapping[str, ArmModel],
                        explainers: Mapping[str, TreeExplainer | None]) -> list[dict[str, Any]]:
    """The router's explanations of one feature row by the models of `arms`, in that order; an
    arm whose model cannot be explained is {"model_version": arm, "unsupported": why}."""
    out: list[dict[str, Any]] = []
    for arm in arms:
        explainer, model = explainers[arm], models[arm]
        if explainer is None:
            out.append({"model_version": arm, "unsupported": f"{arm}'s model "
                        f"{model.tag} is not a tree ensemble"})
            continue
        entry = model_explanation(arm, model.tag, model.threshold,  # type: ignore[arg-type]
                                  explainer.explain(row))
        out.append(entry.model_dump())
    return out


def explain_response(arm: Arm, entries: list[dict[str, Any]]) -> ExplainResponse:
    """POST /explain's answer from the router's entries; NotExplainable (501) names every arm
    whose model is not a tree ensemble."""
    unsupported = [e["unsupported"] for e in entries if "unsupported" in e]
    if unsupported:
        raise NotExplainable("; ".join(unsupported))
    return ExplainResponse(model_version=arm, explanations=entries)  # type: ignore[arg-type]


def drift_entries(models: Mapping[str, ArmModel],
                  monitors: Mapping[str, DriftMonitor | None]) -> dict[str, Any]:
    """The router's drift report: each arm's window against its model's training reference
    (arms without one are left out)."""
    return {arm: arm_drift(models[arm].tag, m.report()).model_dump()
            for arm, m in monitors.items() if m is not None}

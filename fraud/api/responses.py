"""Response models of POST /explain and GET /drift, built from fraud.explain and fraud.drift.

The service only wires routes to these builders (.wiring/explain_drift.md has the wiring);
the field descriptions are what the Swagger page shows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fraud.explain import Explanation
from fraud.schema import Arm


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

"""The one definition of a transaction: feature order, valid ranges, request and response models.

Training, serving, the gate and the load tests all import from here; nothing else may repeat
the feature order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator


@dataclass(frozen=True)
class Feature:
    """One model input: its name, valid range and whether it must be a whole number."""

    name: str
    description: str
    low: float
    high: float | None = None
    low_inclusive: bool = True
    integer: bool = False

    def rule(self) -> str:
        """The validity rule in words, as error messages quote it."""
        low = f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
        kind = "an integer" if self.integer else "a finite number"
        if self.high is None:
            return f"must be {kind} {low}"
        return f"must be {kind} {low} and <= {self.high:g}"

    def check(self, value: float) -> str | None:
        """None when `value` is valid, else the rule it breaks."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.rule()
        if not math.isfinite(value):
            return self.rule()
        if self.integer and float(value) != int(value):
            return self.rule()
        if value < self.low or (value == self.low and not self.low_inclusive):
            return self.rule()
        if self.high is not None and value > self.high:
            return self.rule()
        return None


FEATURES: tuple[Feature, ...] = (
    Feature("amount", "Transaction amount in the card's currency units.", 0.0,
            low_inclusive=False),
    Feature("hour", "Local hour of day of the transaction (0-23).", 0, 23, integer=True),
    Feature("merchant_risk", "Merchant risk score from 0 (safe) to 1 (risky).", 0.0, 1.0),
    Feature("card_age_days", "Days since the card was issued.", 0.0),
    Feature("distance_km", "Distance in km from the cardholder's usual location.", 0.0),
    Feature("num_recent_txns", "Transactions on this card in the last hour.", 0,
            integer=True),
    Feature("is_international", "1 if the merchant is in another country, else 0.", 0, 1,
            integer=True),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
LABEL = "is_fraud"
ARMS: tuple[str, str] = ("model_a", "model_b")
Arm = Literal["model_a", "model_b"]

# The seed implementation's curl body: the Swagger default and the tests' fixture.
EXAMPLE_TRANSACTION: dict[str, float | int | str] = {
    "user_id": "user_123",
    "amount": 250.0,
    "hour": 23,
    "merchant_risk": 0.8,
    "card_age_days": 15,
    "distance_km": 500,
    "num_recent_txns": 10,
    "is_international": 1,
}


class InvalidTransaction(ValueError):
    """A transaction that breaks a field rule; the message names the field and the rule."""


def _field(name: str, example: float | int) -> object:
    """The feature's field: its rule in words and as JSON Schema bounds, so the published
    schema states the rule (`amount`: exclusiveMinimum 0) instead of only describing it."""
    f = FEATURES_BY_NAME[name]
    bounds: dict[str, float] = {"ge" if f.low_inclusive else "gt": f.low}
    if f.high is not None:
        bounds["le"] = f.high
    return Field(..., description=f"{f.description} Rule: {f.rule()}.", examples=[example],
                 **bounds)  # type: ignore[arg-type]


class Transaction(BaseModel):
    """One payment transaction to score (the seed's flat body)."""

    model_config = ConfigDict(extra="ignore",
                              json_schema_extra={"example": EXAMPLE_TRANSACTION})

    user_id: str = Field(..., min_length=1, max_length=256,
                         description="Stable id of the cardholder; decides the A/B arm.",
                         examples=["user_123"])
    amount: float = _field("amount", 250.0)  # type: ignore[assignment]
    hour: int = _field("hour", 23)  # type: ignore[assignment]
    merchant_risk: float = _field("merchant_risk", 0.8)  # type: ignore[assignment]
    card_age_days: float = _field("card_age_days", 15)  # type: ignore[assignment]
    distance_km: float = _field("distance_km", 500)  # type: ignore[assignment]
    num_recent_txns: int = _field("num_recent_txns", 10)  # type: ignore[assignment]
    is_international: int = _field("is_international", 1)  # type: ignore[assignment]

    @field_validator(*FEATURE_NAMES, mode="before")
    @classmethod
    def _check_range(cls, value: object, info: object) -> object:
        name = info.field_name  # type: ignore[attr-defined]
        feature = FEATURES_BY_NAME[name]
        if isinstance(value, str | bool) or value is None:
            raise ValueError(f"{name} {feature.rule()}")
        problem = feature.check(value)  # type: ignore[arg-type]
        if problem:
            raise ValueError(f"{name} {problem} (got {value!r})")
        return value

    def features(self) -> list[float]:
        """The model input in the one feature order."""
        return feature_vector(self.__dict__)


def feature_vector(values: Mapping[str, Any]) -> list[float]:
    """Already-validated field values as the model input, in the one feature order."""
    return [float(values[n]) for n in FEATURE_NAMES]


def to_matrix(transactions: list[Transaction]) -> np.ndarray:
    """Stack transactions into an (n, n_features) float64 array in FEATURE_NAMES order."""
    return np.array([t.features() for t in transactions], dtype=np.float64).reshape(
        len(transactions), len(FEATURE_NAMES)
    )


class Feedback(BaseModel):
    """The true outcome of an earlier decision (e.g. a chargeback)."""

    request_id: str = Field(..., min_length=1, max_length=64,
                            description="request_id from /predict or /predict_batch.",
                            examples=["3f2b9c0e8d5a4f1b9e7c6d5a4b3c2d1e"])
    # Strict: a label steers the verdict, so only a JSON true/false is one ("yes", 1: 400).
    is_fraud: StrictBool = Field(..., description="True if the transaction was fraud: a JSON "
                                 "boolean, nothing else.", examples=[True])


class ShareChange(BaseModel):
    """A new challenger share of users."""

    # Strict: false, "0.5" and null are refused, not read as numbers.
    challenger_share: float = Field(..., ge=0, le=1, strict=True, examples=[0.1],
                                    description="Share of users sent to model_b: a JSON "
                                    "number from 0 to 1.")


class Prediction(BaseModel):
    """The decision for one transaction."""

    request_id: str = Field(..., description="Id to quote in POST /feedback.")
    is_fraud: bool = Field(..., description="The decision at the serving model's threshold.")
    fraud_probability: float = Field(..., description="Model score in [0, 1].")
    model_version: Arm = Field(..., description="A/B arm: model_a (champion) or model_b.")
    model_tag: str = Field(..., description="BentoML model tag that scored it.")
    latency_ms: float = Field(..., description="Server-side time to score, in ms.")
    timestamp: str = Field(..., description="UTC time of the decision, ISO 8601.")


def utc_now_iso() -> str:
    """UTC now as ISO 8601 with a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""The one definition of a transaction: feature order, valid ranges, request and response models.

The features come from configs/features.yaml (fraud/features.py reads it; its path is the
FRAUDSERVE_FEATURES setting); the request model is built from them, field by field, in file
order. Training, serving, the gate and the load tests all import from here; nothing else may
repeat the feature order.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model, field_validator

from fraud.features import (
    LIMIT,
    Feature,
    differences,
    load_features,
    read_file,
    schema_hash,
    schema_spec,
)

__all__ = ["Feature", "differences"]

_FILE = read_file()
FEATURES: tuple[Feature, ...] = load_features()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# What a trained model records and serving compares: the model-relevant schema and its hash.
SCHEMA: list[dict[str, Any]] = schema_spec(FEATURES)
SCHEMA_HASH: str = schema_hash(SCHEMA)
# The feature holding the transaction's amount (the ledger's money metrics, the cost rule);
# None when the feature file names none.
AMOUNT_FEATURE: str | None = _FILE.amount_feature
AMOUNT_INDEX: int | None = None if AMOUNT_FEATURE is None else FEATURE_NAMES.index(
    AMOUNT_FEATURE)
LABEL = "is_fraud"
# The two A/B arms, defined here only: everything else imports ARMS (or its two names).
Arm = Literal["model_a", "model_b"]
ARMS: tuple[Arm, Arm] = ("model_a", "model_b")
CHAMPION, CHALLENGER = ARMS
ROLES: dict[str, str] = {CHAMPION: "champion", CHALLENGER: "challenger"}

# The Swagger default and the tests' fixture; with the seed's features, its curl body.
EXAMPLE_TRANSACTION: dict[str, float | int | bool | str] = {
    "user_id": "user_123", **{f.name: f.example for f in FEATURES}}


class InvalidTransaction(ValueError):
    """A transaction that breaks a field rule; the message names the field and the rule."""


_TYPES: dict[str, Any] = {"number": float, "integer": int, "boolean": bool}


def _field(f: Feature) -> tuple[Any, Any]:
    """The feature's annotation and field: its rule in words and as JSON Schema (bounds, enum),
    so the published schema states the rule (`amount`: exclusiveMinimum 0) instead of only
    describing it."""
    extra: dict[str, Any] = {}
    if f.kind in ("number", "integer"):  # both bounds, always: LIMIT where the file has none
        def bound(v: float) -> float | int:  # an integer's whole bounds as integers
            return int(v) if f.integer and float(v).is_integer() else v

        extra["ge" if f.low_inclusive or f.low is None else "gt"] = bound(f.min_value)
        extra["le"] = bound(f.max_value)
    if f.categorical:
        kind: Any = Literal[f.values] if f.unseen == "reject" else str  # type: ignore[valid-type]
    else:
        kind = _TYPES[f.kind]
    return kind, Field(..., description=f"{f.description} Rule: {f.rule()}.",
                       examples=[f.example], **extra)


def quick_check(f: Feature) -> Callable[[Any], bool]:
    """A quick test of a feature's usual valid values (a JSON number of the right type in
    range, true/false, a listed category): True only where `Feature.check` finds nothing;
    False means "ask `check`", which decides and says why. Every field of every served row
    goes through it first (`check` costs ~1 us a field: a sixth of a bulk request's work in an
    API worker)."""
    if f.kind == "boolean":
        return lambda v: v is True or v is False
    if f.categorical:
        if f.unseen == "other":
            return lambda v: type(v) is str and v != ""
        values = frozenset(f.values)
        return lambda v: type(v) is str and v in values
    # Finite bounds within +-LIMIT: in range means finite, and an int exact as a float.
    low, high = max(f.min_value, -LIMIT), min(f.max_value, LIMIT)
    excluded = None if f.low_inclusive or f.low is None else f.low
    if f.integer:
        return lambda v: type(v) is int and low <= v <= high and v != excluded
    return lambda v: (type(v) is float or type(v) is int) and low <= v <= high \
        and v != excluded


def transaction_model(features: tuple[Feature, ...]) -> type[BaseModel]:
    """The request model of one transaction with `features`: user_id, then each feature in
    order, each validated by its rule before pydantic parses it (so a 400 quotes the rule)."""
    by_name = {f.name: f for f in features}
    example = {"user_id": "user_123", **{f.name: f.example for f in features}}

    class Base(BaseModel):
        model_config = ConfigDict(extra="ignore", json_schema_extra={"example": example})

        user_id: str = Field(..., min_length=1, max_length=256,
                             description="Stable id of the cardholder; decides the A/B arm.",
                             examples=["user_123"])

        def features(self) -> list[float]:
            """The model input in the one feature order."""
            return [f.encode(self.__dict__[f.name]) for f in features]

    accepts = {f.name: quick_check(f) for f in features}

    def check(cls: type, value: object, info: Any) -> object:
        name = info.field_name
        if accepts[name](value):
            return value
        feature = by_name[name]
        if feature.kind in ("number", "integer") and (isinstance(value, str | bool)
                                                      or value is None):
            raise ValueError(f"{name} {feature.rule()}")
        problem = feature.check(value)
        if problem:
            raise ValueError(f"{name} {problem} (got {value!r})")
        return value

    return create_model(  # type: ignore[call-overload,no-any-return]
        "Transaction", __base__=Base, __module__=__name__,
        __doc__="One payment transaction to score (the seed's flat body).",
        __validators__={"_check_range": field_validator(*by_name, mode="before")(
            classmethod(check))},
        **{f.name: _field(f) for f in features})


Transaction: Any = transaction_model(FEATURES)


def feature_vector(values: Mapping[str, Any]) -> list[float]:
    """Already-validated field values as the model input, in the one feature order
    (categories as their codes, booleans as 0/1)."""
    return [f.encode(values[f.name]) for f in FEATURES]


_VALUES = operator.itemgetter(*FEATURE_NAMES)  # a validated row's values, in feature order
_CODED = any(f.categorical for f in FEATURES)  # categories need their codes (Feature.encode)


def to_matrix(transactions: list[Any]) -> np.ndarray:
    """Stack transactions into an (n, n_features) float64 array in FEATURE_NAMES order (without
    categories, numbers and booleans are taken as they are: numpy's float64 of a bool is 0/1,
    as Feature.encode's)."""
    if _CODED:
        rows: list[Any] = [t.features() for t in transactions]
    else:
        rows = [_VALUES(t.__dict__) for t in transactions]
    return np.array(rows, dtype=np.float64).reshape(len(transactions), len(FEATURE_NAMES))


# Where a label came from (POST /feedback `source`), stored with it.
LabelSource = Literal["chargeback", "review", "customer", "other"]
LABEL_SOURCES: tuple[str, ...] = ("chargeback", "review", "customer", "other")


class Feedback(BaseModel):
    """The true outcome of an earlier decision (e.g. a chargeback)."""

    request_id: str = Field(..., min_length=1, max_length=64,
                            description="request_id from /predict or /predict_batch.",
                            examples=["3f2b9c0e8d5a4f1b9e7c6d5a4b3c2d1e"])
    # Strict: a label steers the verdict, so only a JSON true/false is one ("yes", 1: 400).
    is_fraud: StrictBool = Field(..., description="True if the transaction was fraud: a JSON "
                                 "boolean, nothing else.", examples=[True])
    source: LabelSource | None = Field(
        None, description="Where the label came from: chargeback (an approved transaction "
        "charged back), review (an analyst's verdict), customer (the cardholder's report) or "
        "other; stored with the label. Reviews are chosen cases, so estimates that must be "
        "unbiased never weigh them.", examples=["chargeback"])


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

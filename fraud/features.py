"""configs/features.yaml: the one definition of a transaction's features, read into `Feature`s.

Each feature has a name, a description, a type (number, integer, boolean, or category with its
allowed values and what an unseen value does), a valid range where numeric, an optional
example and an optional reason phrase. fraud/schema.py builds the request model from them.

Encoding for the models: one float column per feature, in file order. Numbers and integers as
they are, booleans as 0/1, categories as ordinal codes (the index in `values`; an unseen value
with `unseen: other` is the code len(values)). Ordinal, not one-hot, because one column per
feature keeps the feature vector, drift, explanations (one contribution and one reason per
feature), the gate and the compiled tree scorer unchanged; tree ensembles split on codes
without reading an order into them, and the linear model one-hot encodes category columns
inside its own pipeline (training/estimators.py).

The file's path is a setting: FRAUDSERVE_FEATURES, else features.yaml in FRAUDSERVE_CONFIG_DIR,
else configs/features.yaml. Like fraud/config, this module imports no other fraud module.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Kind = Literal["number", "integer", "boolean", "category"]
PROJECT_ROOT = Path(__file__).resolve().parents[1]
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RESERVED = frozenset({"user_id", "is_fraud"})
# A number or integer with no `min` or `max` is still bounded: |value| <= LIMIT, the largest
# integer JSON and float64 both hold exactly (2**53 - 1). Served, validated and published
# the same way (fraud/schema.py), but not part of the model's schema (spec, hash): a bound
# the file leaves out is the service's, not the model's.
LIMIT = 2**53 - 1


def features_path() -> Path:
    """Where the feature definitions live (FRAUDSERVE_FEATURES overrides)."""
    if os.environ.get("FRAUDSERVE_FEATURES"):
        return Path(os.environ["FRAUDSERVE_FEATURES"])
    config_dir = Path(os.environ.get("FRAUDSERVE_CONFIG_DIR", PROJECT_ROOT / "configs"))
    return config_dir / "features.yaml"


@dataclass(frozen=True)
class Feature:
    """One model input: its name, type, valid range or values, and how it reads. The derived
    values below are computed once (every served row's fields are checked against them)."""

    name: str
    description: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    kind: Kind = "number"
    values: tuple[str, ...] = ()
    unseen: Literal["reject", "other"] = "reject"
    example: Any = None
    reason: str | Mapping[Any, str] | None = field(default=None, compare=False)

    @cached_property
    def integer(self) -> bool:
        return self.kind == "integer"

    @cached_property
    def categorical(self) -> bool:
        return self.kind == "category"

    @cached_property
    def n_codes(self) -> int:
        """How many codes a category can take (its values, and 'other' when allowed)."""
        return len(self.values) + (self.unseen == "other")

    @cached_property
    def min_value(self) -> float:
        """The lowest value served: `low`, else -LIMIT (a number or integer)."""
        return self.low if self.low is not None else -LIMIT

    @cached_property
    def max_value(self) -> float:
        """The highest value served: `high`, else LIMIT (a number or integer)."""
        return self.high if self.high is not None else LIMIT

    def rule(self) -> str:
        """The validity rule in words, as error messages and the published schema quote it."""
        if self.kind == "boolean":
            return "must be true or false"
        if self.categorical:
            listed = ", ".join(repr(v) for v in self.values)
            other = "; any other text counts as 'other'" if self.unseen == "other" else ""
            return f"must be one of {listed}{other}"
        kind = "an integer" if self.integer else "a finite number"
        low = f"{'>=' if self.low_inclusive or self.low is None else '>'} {_num(self.min_value)}"
        return f"must be {kind} {low} and <= {_num(self.max_value)}"

    def check(self, value: Any) -> str | None:
        """None when `value` is valid, else the rule it breaks."""
        if self.kind == "boolean":
            return None if isinstance(value, bool) else self.rule()
        if self.categorical:
            if not isinstance(value, str) or not value:
                return self.rule()
            return None if value in self.values or self.unseen == "other" else self.rule()
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.rule()
        if not math.isfinite(value):
            return self.rule()
        if self.integer and float(value) != int(value):
            return self.rule()
        if value < self.min_value or (value == self.low and not self.low_inclusive):
            return self.rule()
        if value > self.max_value:
            return self.rule()
        return None

    def encode(self, value: Any) -> float:
        """A valid value as the model's float: itself, 0/1, or a category's code."""
        if self.categorical:
            return float(self.values.index(value) if value in self.values else len(self.values))
        return float(value)

    def decode(self, code: float) -> Any:
        """The value a model float stands for (a category's name, 'other' past the list)."""
        if self.categorical:
            i = int(code)
            return self.values[i] if 0 <= i < len(self.values) else "other"
        if self.kind == "boolean":
            return bool(code)
        return int(code) if self.integer else float(code)

    def spec(self) -> dict[str, Any]:
        """What a model depends on (no description, example or phrasing): hashed and stored."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind in ("number", "integer"):  # no None: BentoML metadata refuses it
            bounds = {"min": self.low, "min_inclusive": self.low_inclusive, "max": self.high}
            out.update({k: v for k, v in bounds.items() if v is not None})
        if self.categorical:
            out.update(values=list(self.values), unseen=self.unseen)
        return out


def _num(value: float) -> str:
    """A bound in words: whole numbers in full (9007199254740991, not 9.0072e+15)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _FeatureEntry(BaseModel):
    """One entry of configs/features.yaml (unknown keys are refused: a typo is an error)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=IDENTIFIER)
    description: str = Field(..., min_length=1)
    type: Kind
    min: float | None = None
    min_exclusive: bool = False
    max: float | None = None
    values: list[str] | None = None
    unseen: Literal["reject", "other"] = "reject"
    example: float | int | bool | str | None = None
    reason: str | dict[Any, str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _FeatureEntry:
        numeric = self.type in ("number", "integer")
        if self.type == "category":
            if not self.values or len(set(self.values)) != len(self.values):
                raise ValueError(f"{self.name}: a category needs `values`, each listed once")
        elif self.values is not None:
            raise ValueError(f"{self.name}: only a category has `values`")
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"{self.name}: only a number or an integer has min/max")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"{self.name}: max {self.max:g} is below min {self.min:g}")
        if self.min_exclusive and self.min is None:
            raise ValueError(f"{self.name}: min_exclusive needs a min")
        return self

    def feature(self) -> Feature:
        numeric = self.type in ("number", "integer")
        feature = Feature(
            name=self.name, description=self.description,
            low=self.min if numeric else None, high=self.max if numeric else None,
            low_inclusive=not self.min_exclusive, kind=self.type,
            values=tuple(self.values or ()), unseen=self.unseen, reason=self.reason)
        example = _default_example(feature) if self.example is None else self.example
        if self.type == "integer" and isinstance(example, float) and example.is_integer():
            example = int(example)
        problem = feature.check(example)
        if problem:
            raise ValueError(f"{self.name}: example {example!r} {problem}")
        return replace(feature, example=example)


def _default_example(f: Feature) -> Any:
    if f.categorical:
        return f.values[0]
    if f.kind == "boolean":
        return False
    if f.low is None:
        value = 0.0 if f.high is None or f.high >= 0 else f.high
    else:
        value = f.low if f.low_inclusive else f.low + 1
        if f.high is not None:
            value = (f.low + f.high) / 2
    return math.ceil(value) if f.integer else float(value)


class FeatureFile(BaseModel):
    """configs/features.yaml."""

    model_config = ConfigDict(extra="forbid")

    features: list[_FeatureEntry] = Field(..., min_length=1)
    # The feature holding the transaction's amount: the ledger stores it with each decision
    # for the money metrics, and threshold.rule: cost reads it. None: no amount.
    amount_feature: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> FeatureFile:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names listed more than once: {', '.join(dupes)}")
        reserved = sorted(RESERVED & set(names))
        if reserved:
            raise ValueError(f"reserved names cannot be features: {', '.join(reserved)}")
        kinds = {f.name: f.type for f in self.features}
        if self.amount_feature is not None and kinds.get(self.amount_feature) != "number":
            raise ValueError(f"amount_feature {self.amount_feature!r} is not a number feature")
        return self


class FeatureConfigError(ValueError):
    """configs/features.yaml cannot be used; the message names the file and the problem."""


def read_file(path: Path | str | None = None) -> FeatureFile:
    """Read and validate the feature file (the default path: `features_path()`)."""
    path = Path(path) if path else features_path()
    if not path.exists():
        raise FeatureConfigError(f"feature definitions not found: {path} (FRAUDSERVE_FEATURES)")
    try:
        return FeatureFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError, ValueError) as exc:
        raise FeatureConfigError(f"{path}: {exc}") from None


def load_features(path: Path | str | None = None) -> tuple[Feature, ...]:
    """The features of the feature file, in order."""
    try:
        return tuple(entry.feature() for entry in read_file(path).features)
    except ValueError as exc:
        if isinstance(exc, FeatureConfigError):
            raise
        raise FeatureConfigError(f"{Path(path) if path else features_path()}: {exc}") from None


def schema_spec(features: tuple[Feature, ...]) -> list[dict[str, Any]]:
    """The model-relevant definition of every feature, in order (JSON-ready)."""
    return [f.spec() for f in features]


def schema_hash(spec: list[dict[str, Any]]) -> str:
    """SHA-256 of a schema spec: two models share inputs exactly when their hashes match."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def differences(trained: list[dict[str, Any]], served: list[dict[str, Any]]) -> list[str]:
    """How the schema a model was trained on differs from the one served, in words."""
    a = {f["name"]: f for f in trained}
    b = {f["name"]: f for f in served}
    out = [f"feature {n!r} is not in the served schema" for n in a if n not in b]
    out += [f"feature {n!r} is new in the served schema" for n in b if n not in a]
    for name in (n for n in a if n in b):
        for key in sorted(set(a[name]) | set(b[name])):
            if a[name].get(key) != b[name].get(key):
                out.append(f"{name}: {key} was {a[name].get(key)!r} in training, "
                           f"{b[name].get(key)!r} now")
    common_a = [n for n in a if n in b]
    common_b = [n for n in b if n in a]
    if not out and common_a != common_b:
        out.append(f"feature order was {common_a} in training, {common_b} now")
    return out

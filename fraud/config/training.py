"""configs/training.yaml: the data source, the two models and how their thresholds are chosen."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from fraud.config.base import CONFIG_DIR, PROJECT_ROOT, Strict, load_yaml


class GeneratorConfig(Strict):
    """Knobs of the built-in transaction generator.

    These defaults are the training data: configs/training.yaml does not repeat them, and
    tests/unit/training/test_data.py fails if the shipped config's data section drifts from them.
    """

    n_rows: int = Field(120_000, ge=100)
    # Share of fraud before label noise.
    fraud_rate: float = Field(0.02, gt=0, lt=0.5)
    # Share of fraud that looks like ordinary traffic (no scenario): keeps AUC below 1.
    stealth_share: float = Field(0.05, ge=0, le=1)
    # Share of legit traffic that looks like one fraud scenario (travellers, night owls...).
    lookalike_share: float = Field(0.0015, ge=0, le=1)
    # Share of labels flipped.
    label_noise: float = Field(0.0005, ge=0, le=0.2)
    # Drift: 0 is the training distribution; 1 is a strong shift of every feature.
    shift: float = Field(0.0, ge=0, le=5)


class DataConfig(Strict):
    """Where the data comes from, how its columns map to the features, and how it is split."""

    source: Literal["generator", "csv", "parquet"] = "generator"
    # The file of a csv or parquet source (`csv_path` is the older name, csv only).
    path: str | None = None
    csv_path: str | None = None
    label_column: str = "is_fraud"
    # Feature name -> column in the file, where they differ (configs/features.yaml's names).
    columns: dict[str, str] = Field(default_factory=dict)
    timestamp_column: str | None = None
    entity_column: str | None = None  # a card or user id
    # stratified: random, fraud rate kept in each split; time: train oldest, validate next,
    # test newest (needs timestamp_column).
    split: Literal["stratified", "time"] = "stratified"
    # One card (entity) never in two splits (needs entity_column).
    group_by_entity: bool = False
    min_fraud_per_split: int = Field(10, ge=1)
    seed: int = 7
    generator: GeneratorConfig = GeneratorConfig()
    validation_fraction: float = Field(0.2, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.csv_path and self.path and self.csv_path != self.path:
            raise ValueError("data.csv_path and data.path name different files: keep `path`")
        if self.csv_path and self.source != "csv":
            raise ValueError("data.csv_path is for source: csv; use data.path")
        if self.source in ("csv", "parquet") and not self.file:
            name = "csv_path" if self.source == "csv" else "path"
            raise ValueError(f"data.{name} is required when data.source is '{self.source}'")
        if self.validation_fraction + self.test_fraction >= 0.8:
            raise ValueError("validation_fraction + test_fraction must leave >= 20% to train")
        if self.split == "time" and not self.timestamp_column:
            raise ValueError("data.split: time needs data.timestamp_column")
        if self.group_by_entity and not self.entity_column:
            raise ValueError("data.group_by_entity needs data.entity_column")
        return self

    @property
    def file(self) -> str | None:
        """The data file of a csv or parquet source."""
        return self.path or self.csv_path


class ModelSpec(Strict):
    """One model: its BentoML name, role, estimator class and hyperparameters."""

    name: str = Field(..., pattern=r"^[a-z0-9_\-]+$")
    estimator: Literal["random_forest", "hist_gradient_boosting", "logistic_regression",
                       "xgboost", "lightgbm"]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _library_installed(self) -> ModelSpec:
        """XGBoost and LightGBM are optional extras: say how to install a missing one."""
        if self.estimator in OPTIONAL_LIBRARIES and importlib.util.find_spec(
                self.estimator) is None:
            raise ValueError(missing_library(self.estimator))
        return self


# Model families that are optional extras of the project (pyproject.toml).
OPTIONAL_LIBRARIES = ("xgboost", "lightgbm")


def missing_library(name: str) -> str:
    """The one line that says an optional model library is missing and how to install it."""
    return (f"estimator {name!r} needs the {name} extra, which is not installed: "
            f"pip install '.[{name}]' (or: pip install -e '.[{name}]')")


class ThresholdConfig(Strict):
    """How the decision threshold is chosen on the validation split.

    max_f1: the F1-maximising threshold. cost: the least expected cost under the shadow cost
    model (declining a legit transaction costs decline_fixed + decline_share x its amount, a
    missed fraud costs its amount; configs/ab.yaml's shadow section uses the same model).
    alert_budget: the lowest threshold that flags at most alerts_per_1000 transactions.
    """

    rule: Literal["max_f1", "cost", "alert_budget"] = "max_f1"
    decline_fixed: float = Field(5.0, ge=0)
    decline_share: float = Field(0.02, ge=0, le=1)
    # The feature holding the transaction's amount (cost); None: configs/features.yaml's
    # amount_feature.
    amount_feature: str | None = None
    alerts_per_1000: float | None = Field(None, gt=0, le=1000)

    @model_validator(mode="after")
    def _budget(self) -> ThresholdConfig:
        if self.rule == "alert_budget" and self.alerts_per_1000 is None:
            raise ValueError("threshold.rule: alert_budget needs threshold.alerts_per_1000")
        return self


class TrainingConfig(Strict):
    """configs/training.yaml."""

    data: DataConfig = DataConfig()
    champion: ModelSpec
    challenger: ModelSpec
    threshold: ThresholdConfig = ThresholdConfig()
    registered_model_name: str = "fraud-detector"
    experiment_name: str = "fraudserve"




def load_training_config(path: Path | str | None = None) -> TrainingConfig:
    """Read and validate configs/training.yaml (or `path`)."""
    return TrainingConfig.model_validate(load_yaml(Path(path or CONFIG_DIR / "training.yaml")))


def mlflow_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else a SQLite file in the project (gitignored)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlruns.db'}"

"""Configuration: YAML files into validated pydantic models, and where the files live.

Owns configs/*.yaml's shape and defaults. Imports no other fraud module (it is the bottom
layer with fraud/schema.py); loading has no side effects beyond reading the file.
"""

from fraud.config.ab import (
    ABConfig,
    AccessConfig,
    CoalesceConfig,
    CorsConfig,
    DriftConfig,
    ExplainConfig,
    GuardrailConfig,
    LabelPolicy,
    LimitsConfig,
    RateLimitConfig,
    ReportConfig,
    RetentionPolicy,
    ShadowConfig,
    load_ab_config,
)
from fraud.config.base import CONFIG_DIR, PROJECT_ROOT, Strict, load_yaml
from fraud.config.settings import PSI_BINS, DriftSettings, Metric, StatsSettings
from fraud.config.training import (
    DataConfig,
    GeneratorConfig,
    ModelSpec,
    ThresholdConfig,
    TrainingConfig,
    load_training_config,
    mlflow_tracking_uri,
)

__all__ = [
    "CONFIG_DIR", "PROJECT_ROOT", "PSI_BINS", "ABConfig", "AccessConfig", "CoalesceConfig",
    "CorsConfig", "DataConfig", "DriftConfig", "DriftSettings", "ExplainConfig",
    "GeneratorConfig", "GuardrailConfig", "LabelPolicy", "LimitsConfig", "Metric", "ModelSpec",
    "RateLimitConfig",
    "ReportConfig", "RetentionPolicy", "ShadowConfig", "StatsSettings", "Strict",
    "ThresholdConfig", "TrainingConfig", "load_ab_config", "load_training_config", "load_yaml",
    "mlflow_tracking_uri",
]

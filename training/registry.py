"""Registry: log runs to MLflow, register both models with aliases, save them to BentoML."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import bentoml
import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature

from fraud.config import TrainingConfig, mlflow_tracking_uri
from fraud.drift import build_reference
from fraud.schema import FEATURE_NAMES, SCHEMA, SCHEMA_HASH
from training.data import Splits
from training.estimators import family
from training.train import TrainedModel, features

# Types skops may load besides its defaults, checked rather than trusted blindly: only
# scikit-learn's own classes (a forest's Tree, the boosting predictors) may appear.
_ALLOWED_SKOPS_PREFIXES = ("sklearn.",)


def trusted_skops_types(estimator: Any) -> list[str]:
    """The untrusted types skops reports for `estimator`, after checking each is sklearn's."""
    import skops.io

    blob = skops.io.dumps(estimator)
    untrusted = skops.io.get_untrusted_types(data=blob)
    foreign = [t for t in untrusted if not t.startswith(_ALLOWED_SKOPS_PREFIXES)]
    if foreign:
        raise RuntimeError(f"refusing to trust non-sklearn types for skops: {foreign}")
    return untrusted


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    return {f"{prefix}_{k}": float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def data_spec(cfg: TrainingConfig) -> dict[str, Any]:
    """Everything needed to rebuild the exact splits (the gate re-derives them from this);
    a data file by its absolute path, so the gate finds it from any directory."""
    spec = json.loads(cfg.data.model_dump_json())
    if cfg.data.file:
        spec.update(path=str(Path(cfg.data.file).resolve()), csv_path=None)
    return spec


def _use_experiment(name: str) -> None:
    """Point MLflow at the tracking store; a SQLite store keeps its artifacts beside it."""
    uri = mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(name) is None and uri.startswith("sqlite:///"):
        artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        mlflow.create_experiment(name, artifact_location=artifacts.resolve().as_uri())
    mlflow.set_experiment(name)


def log_to_mlflow(model: TrainedModel, cfg: TrainingConfig, splits: Splits) -> tuple[str, str]:
    """One MLflow run for `model`; returns (run_id, registered model version)."""
    _use_experiment(cfg.experiment_name)
    sample = pd.DataFrame(splits.validation[list(FEATURE_NAMES)].head(5))
    signature = infer_signature(sample, model.estimator.predict_proba(sample.to_numpy())[:, 1])
    with mlflow.start_run(run_name=f"{model.role}-{model.spec.name}") as run:
        mlflow.set_tags({"role": model.role, "bentoml_model": model.spec.name,
                         "estimator": model.spec.estimator})
        mlflow.log_params({"estimator": model.spec.estimator, "threshold_rule":
                           cfg.threshold.rule, **{f"model.{k}": v for k, v in
                                                  model.spec.params.items()},
                           **{f"split_size.{k}": v for k, v in splits.sizes().items()},
                           "data.source": cfg.data.source, "data.seed": cfg.data.seed,
                           "data.split": cfg.data.split,
                           "data.group_by_entity": cfg.data.group_by_entity})
        mlflow.log_metric("threshold", model.threshold)
        mlflow.log_metric("fit_seconds", model.fit_seconds)
        mlflow.log_metrics(_flat("val", model.validation["overall"]))
        mlflow.log_metrics(_flat("test", model.test["overall"]))
        mlflow.log_metrics(_flat("importance", model.feature_importances))
        mlflow.log_dict(model.test, "evaluation/test_report.json")
        mlflow.log_dict(model.validation, "evaluation/validation_report.json")
        mlflow.log_dict(splits.hashes(), "data/split_hashes.json")
        mlflow.log_dict(model.feature_importances, "feature_importances.json")
        mlflow.log_dict(model.threshold_rule, "evaluation/threshold_curve.json")
        info = _log_model(model, signature, cfg.registered_model_name)
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(cfg.registered_model_name, model.role, version)
    return run_id, version


def _log_model(model: TrainedModel, signature: Any, registered: str) -> Any:
    """The estimator as an MLflow model, through its own library's flavour."""
    kind = family(model.spec.estimator)
    if kind == "xgboost":
        return mlflow.xgboost.log_model(model.estimator, name="model", signature=signature,
                                        registered_model_name=registered)
    if kind == "lightgbm":
        return mlflow.lightgbm.log_model(model.estimator, name="model", signature=signature,
                                         registered_model_name=registered)
    return mlflow.sklearn.log_model(
        model.estimator, name="model", serialization_format="skops",
        skops_trusted_types=trusted_skops_types(model.estimator), signature=signature,
        registered_model_name=registered)


def _save(model: TrainedModel, metadata: dict[str, Any]) -> bentoml.Model:
    """The estimator in the BentoML store through its framework's module, with signatures."""
    kind = family(model.spec.estimator)
    common = {"labels": {"role": model.role, "project": "fraudserve"},
              "metadata": _without_none(json.loads(json.dumps(metadata)))}
    if kind == "xgboost":
        return bentoml.xgboost.save_model(
            model.spec.name, model.estimator,
            signatures={"predict_proba": {"batchable": True, "batch_dim": 0}}, **common)
    if kind == "lightgbm":  # BentoML stores LightGBM's Booster: predict gives P(fraud)
        return bentoml.lightgbm.save_model(
            model.spec.name, model.estimator.booster_,
            signatures={"predict": {"batchable": True, "batch_dim": 0}}, **common)
    return bentoml.sklearn.save_model(
        model.spec.name, model.estimator,
        signatures={"predict_proba": {"batchable": True, "batch_dim": 0}}, **common)


def _versions(estimator: str) -> dict[str, str]:
    versions = {"scikit-learn": sklearn.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    kind = family(estimator)
    if kind != "sklearn":
        versions[kind] = __import__(kind).__version__
    return versions


def save_to_bentoml(model: TrainedModel, cfg: TrainingConfig, splits: Splits,
                    run_id: str, mlflow_version: str) -> bentoml.Model:
    """Save the estimator with everything serving needs in its metadata."""
    metadata = {
        "role": model.role,
        "features": list(FEATURE_NAMES),
        # The schema the model was trained on (configs/features.yaml): serving refuses another.
        "schema": SCHEMA,
        "schema_hash": SCHEMA_HASH,
        "threshold": model.threshold,
        "threshold_rule": cfg.threshold.rule,
        # the rule's settings, the chosen point and the validation curve it was chosen on
        "threshold_choice": model.threshold_rule,
        "metrics": {"test": model.test["overall"], "validation": model.validation["overall"]},
        "mlflow_run_id": run_id,
        "mlflow_tracking_uri": mlflow_tracking_uri(),
        "mlflow_registered_model": cfg.registered_model_name,
        "mlflow_model_version": mlflow_version,
        "split_hashes": splits.hashes(),
        "split_sizes": splits.sizes(),
        "split_ranges": splits.ranges(),  # first and last timestamp of each split, if any
        "rows_dropped_by_grouping": splits.dropped,
        "data_spec": data_spec(cfg),
        "estimator": model.spec.estimator,
        "family": family(model.spec.estimator),
        # PSI bins and a KS sketch of the training split: GET /drift needs no training data.
        "drift_reference": build_reference(features(splits.train)),
        "library_versions": _versions(model.spec.estimator),
    }
    return _save(model, metadata)


def _without_none(value: Any) -> Any:
    """BentoML metadata rejects None: drop such keys (readers treat a missing key as None)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value

"""Load a stored model whatever its family: scikit-learn, XGBoost or LightGBM.

Each is read through its own BentoML framework module (the one training saved it with), and
comes back with scikit-learn's `predict_proba`, which the router, the gate and the fast scorer
call. XGBoost and LightGBM are optional extras: a model of one whose library is missing
stops the start with the pip command to run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

FRAMEWORKS = ("sklearn", "xgboost", "lightgbm")


class MissingLibrary(RuntimeError):
    """A stored model needs an optional library that is not installed."""


class BoosterClassifier:
    """A LightGBM Booster (binary objective) with scikit-learn's predict_proba."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.asarray(self.booster.predict(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        return np.column_stack([1.0 - p, p])


def framework(module: str) -> str:
    """sklearn, xgboost or lightgbm from a BentoML model's `module` (e.g. bentoml.xgboost)."""
    name = module.rsplit(".", 1)[-1]
    if not module.startswith(("bentoml.", "_bentoml_impl.")) or name not in FRAMEWORKS:
        raise ValueError(f"fraudserve cannot serve a model saved with {module!r}")
    return name


def require(library: str) -> None:
    """Raise MissingLibrary (with the pip command) unless `library` is importable."""
    if library != "sklearn" and importlib.util.find_spec(library) is None:
        raise MissingLibrary(f"the model needs {library}, which is not installed: "
                             f"pip install '.[{library}]' (or: pip install -e '.[{library}]')")


def load_estimator(model_ref: Any) -> Any:
    """The estimator of a BentoML model (a tag, a bentoml.Model or a BentoModel), with
    predict_proba, loaded by the framework module it was saved with."""
    import bentoml

    tag = getattr(model_ref, "tag", model_ref)
    stored = bentoml.models.get(tag)
    kind = framework(stored.info.module)
    require(kind)
    if kind == "xgboost":
        return bentoml.xgboost.load_model(stored)
    if kind == "lightgbm":
        return BoosterClassifier(bentoml.lightgbm.load_model(stored))
    return bentoml.sklearn.load_model(stored)

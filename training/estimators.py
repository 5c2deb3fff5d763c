"""Estimators by family: scikit-learn (random forest, histogram boosting, logistic regression),
XGBoost and LightGBM (optional extras), each fitted on the one feature matrix.

Category features arrive as ordinal codes (fraud/features.py). Trees split on them as they
are; the logistic regression one-hot encodes them inside its pipeline, so it reads no order
into the codes (with the seed's features, which have no category, its pipeline is the same
as ever: a scaler and the regression).
"""

from __future__ import annotations

from typing import Any, Literal

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fraud.config import ModelSpec
from fraud.config.training import OPTIONAL_LIBRARIES, missing_library
from fraud.schema import FEATURES

Family = Literal["sklearn", "xgboost", "lightgbm"]

# Defaults that make the libraries deterministic and quiet on a shared 2-core machine.
XGBOOST_DEFAULTS = {"n_jobs": 1, "tree_method": "hist", "eval_metric": "logloss"}
LIGHTGBM_DEFAULTS = {"n_jobs": 1, "verbose": -1, "deterministic": True,
                     "force_row_wise": True}


def family(estimator: str) -> Family:
    """Which library (and BentoML framework module) an estimator name belongs to."""
    return estimator if estimator in OPTIONAL_LIBRARIES else "sklearn"  # type: ignore[return-value]


def _library(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise RuntimeError(missing_library(name)) from None


def _logistic(params: dict[str, Any]) -> Any:
    categories = [j for j, f in enumerate(FEATURES) if f.categorical]
    if not categories:
        return make_pipeline(StandardScaler(), LogisticRegression(**params))
    numeric = [j for j in range(len(FEATURES)) if j not in categories]
    encode = ColumnTransformer([
        ("categories", OneHotEncoder(categories=[list(range(FEATURES[j].n_codes))
                                                 for j in categories],
                                     handle_unknown="ignore"), categories),
        ("numbers", StandardScaler(), numeric)])
    return make_pipeline(encode, LogisticRegression(**params))


def build_estimator(spec: ModelSpec) -> Any:
    """A fresh, unfitted estimator from a model spec."""
    if spec.estimator == "random_forest":
        return RandomForestClassifier(**spec.params)
    if spec.estimator == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(**spec.params)
    if spec.estimator == "xgboost":
        return _library("xgboost").XGBClassifier(**{**XGBOOST_DEFAULTS, **spec.params})
    if spec.estimator == "lightgbm":
        return _library("lightgbm").LGBMClassifier(**{**LIGHTGBM_DEFAULTS, **spec.params})
    return _logistic(spec.params)

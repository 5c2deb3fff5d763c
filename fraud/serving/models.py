"""Resolve the two arms' models in the BentoML store, the same way for the service and the gate."""

from __future__ import annotations

import os
from typing import Any

from fraud.config import ABConfig
from fraud.experiment.decisions import ArmModel
from fraud.schema import ARMS, FEATURE_NAMES, SCHEMA, SCHEMA_HASH, Arm, differences

PROJECT_LABEL = "fraudserve"


class ModelsMissing(RuntimeError):
    """A model named in configs/ab.yaml is not in the BentoML store."""


class ModelMismatch(RuntimeError):
    """A stored model cannot serve this schema (other features, no threshold)."""


def store_location() -> str:
    """Where the BentoML store lives (for error messages)."""
    return os.environ.get("BENTOML_HOME") or os.path.expanduser("~/bentoml")


def arm_refs(cfg: ABConfig) -> dict[Arm, str]:
    """Model references per arm; FRAUDSERVE_MODEL_A / _B override configs/ab.yaml."""
    return {
        "model_a": os.environ.get("FRAUDSERVE_MODEL_A") or cfg.model_a,
        "model_b": os.environ.get("FRAUDSERVE_MODEL_B") or cfg.model_b,
    }


def by_role(role: str) -> Any:
    """The newest fraudserve model in the store labelled with `role` (champion/challenger)."""
    import bentoml
    from bentoml.exceptions import NotFound

    found = [m for m in bentoml.models.list()
             if m.info.labels.get("project") == PROJECT_LABEL and m.info.labels.get("role") == role]
    if not found:
        raise NotFound(f"no model with role {role!r}")
    return max(found, key=lambda m: m.info.creation_time)


def schema_problem(meta: dict[str, Any]) -> str | None:
    """None when a model's metadata says it was trained on the served schema, else how not.

    Models record their schema and its hash (training/registry.py); one saved before that
    is compared by its feature names only."""
    if "schema_hash" not in meta:
        if tuple(meta.get("features", ())) != FEATURE_NAMES:
            return (f"was trained on features {meta.get('features')}, the service sends "
                    f"{list(FEATURE_NAMES)}")
        return None
    if meta["schema_hash"] == SCHEMA_HASH:
        return None
    changes = differences(list(meta.get("schema") or ()), SCHEMA) or [
        f"schema hash {meta['schema_hash'][:12]} is not the served {SCHEMA_HASH[:12]}"]
    return ("was trained on another feature schema than the service's "
            f"(FRAUDSERVE_FEATURES): {'; '.join(changes)}")


def resolve_arms(cfg: ABConfig) -> dict[Arm, ArmModel]:
    """Concrete tags, thresholds and metadata of both arms; raises with one clear line."""
    import bentoml
    from bentoml.exceptions import NotFound

    out: dict[Arm, ArmModel] = {}
    for arm, ref in arm_refs(cfg).items():
        try:
            stored = by_role(ref[1:]) if ref.startswith("@") else bentoml.models.get(ref)
        except NotFound:
            raise ModelsMissing(
                f"model {ref!r} ({arm}) is not in the BentoML store at {store_location()}: "
                "run `make train` (or `python -m training`) first"
            ) from None
        meta = dict(stored.info.metadata)
        problem = schema_problem(meta)
        if problem:
            raise ModelMismatch(f"model {stored.tag} ({arm}) {problem}")
        if "threshold" not in meta:
            raise ModelMismatch(f"model {stored.tag} has no decision threshold in its metadata")
        out[arm] = ArmModel(arm=arm, tag=str(stored.tag), threshold=float(meta["threshold"]),
                            metadata=meta)
    assert set(out) == set(ARMS)
    return out

"""What the seed's seven-feature schema publishes and produces, as one JSON-ready record.

tests/unit/fixtures/seed_schema.json holds this record as it was before the schema moved to
configs/features.yaml; tests/unit/test_seed_schema_unchanged.py compares today's with it.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import ValidationError

from fraud.config import DataConfig, GeneratorConfig
from fraud.drift import build_reference
from fraud.schema import (
    EXAMPLE_TRANSACTION,
    FEATURE_NAMES,
    Feedback,
    Prediction,
    ShareChange,
    Transaction,
    to_matrix,
)
from training.data import frame_hash, generate, split

# The README's two examples: the seed's curl body and the centre of its "normal" profile.
ORDINARY = {"user_id": "user_456", "amount": 105.0, "hour": 14, "merchant_risk": 0.15,
            "card_age_days": 795, "distance_km": 10.0, "num_recent_txns": 2,
            "is_international": 0}
BAD_VALUES: list[tuple[str, Any]] = [
    ("amount", 0), ("amount", -3.5), ("amount", math.nan), ("amount", math.inf),
    ("amount", "12"), ("amount", None), ("amount", True), ("hour", 24), ("hour", -1),
    ("hour", 3.5), ("hour", "3"), ("hour", None), ("merchant_risk", 1.01),
    ("merchant_risk", -0.01), ("card_age_days", -1), ("distance_km", -0.1),
    ("num_recent_txns", -2), ("num_recent_txns", 1.5), ("is_international", 2),
    ("is_international", True), ("is_international", 0.5), ("user_id", ""),
]


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        Transaction(**body)
    except ValidationError as exc:
        return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()]
    return []


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def snapshot() -> dict[str, Any]:
    """The seed schema's published shapes, 400 messages, feature vectors and training data."""
    data = generate(GeneratorConfig(n_rows=3000), 7)
    splits = split(data, DataConfig())
    missing = {k: v for k, v in EXAMPLE_TRANSACTION.items() if k != "merchant_risk"}
    return {
        "feature_names": list(FEATURE_NAMES),
        "example_transaction": EXAMPLE_TRANSACTION,
        "json_schema": {m.__name__: m.model_json_schema()
                        for m in (Transaction, Prediction, Feedback, ShareChange)},
        "errors": {f"{field}={value!r}": _errors({**EXAMPLE_TRANSACTION, field: value})
                   for field, value in BAD_VALUES},
        "missing_field": _errors(missing),
        "vectors": {"example": Transaction(**EXAMPLE_TRANSACTION).features(),
                    "ordinary": Transaction(**ORDINARY).features()},
        "matrix": to_matrix([Transaction(**EXAMPLE_TRANSACTION),
                             Transaction(**ORDINARY)]).tolist(),
        "generated_hash": frame_hash(data),
        "split_hashes": splits.hashes(),
        "drift_reference_sha256": _digest(build_reference(
            splits.train[list(FEATURE_NAMES)].to_numpy(dtype=float))),
    }


if __name__ == "__main__":
    print(json.dumps(snapshot(), indent=2, default=str))

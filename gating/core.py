"""The gate's checks as plain functions; pytest (gating/test_gate.py) drives them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fraud.config import CONFIG_DIR, DataConfig, load_yaml
from fraud.schema import EXAMPLE_TRANSACTION, FEATURE_NAMES, FEATURES_BY_NAME, LABEL, Transaction
from fraud.serving.fastpredict import scorer
from training.data import Splits, frame_hash, load_splits, row_hashes
from training.evaluate import SLICES, metrics


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SliceRules(_Strict):
    min_fraud: int = Field(30, ge=1)
    min_legit: int = Field(30, ge=1)
    floors: dict[str, float] = {}


class NonInferiority(_Strict):
    margins: dict[str, float] = {"f1": 0.03, "roc_auc": 0.01}


class Behaviour(_Strict):
    sample_rows: int = Field(500, ge=10)
    seed: int = 0
    tolerance: float = Field(0.05, ge=0)
    max_violation_rate: float = Field(0.05, ge=0, le=1)
    perturbations: dict[str, tuple[Literal["add", "multiply"], float]] = {}


class GateConfig(_Strict):
    """configs/gate.yaml."""

    floors: dict[str, float]
    slices: SliceRules = SliceRules()
    non_inferiority: NonInferiority = NonInferiority()
    behaviour: Behaviour = Behaviour()


def load_gate_config(path: Path | str | None = None) -> GateConfig:
    """Read configs/gate.yaml (or `path`, or FRAUDSERVE_GATE_CONFIG)."""
    path = path or os.environ.get("FRAUDSERVE_GATE_CONFIG") or CONFIG_DIR / "gate.yaml"
    return GateConfig.model_validate(load_yaml(Path(path)))


@dataclass
class Check:
    """One verdict: a model's metric against its floor."""

    model: str
    arm: str
    name: str
    value: float | None
    floor: float | None
    op: str = ">="
    passed: bool = False
    detail: str = ""

    @property
    def gap(self) -> float | None:
        if self.value is None or self.floor is None:
            return None
        return self.value - self.floor if self.op == ">=" else self.floor - self.value

    def line(self) -> str:
        """'model X (arm) metric = v < floor f (short by g)' for a failure message."""
        if self.value is None:
            return f"{self.model} ({self.arm}) {self.name}: cannot be computed ({self.detail})"
        rel = "<" if self.op == ">=" else ">"
        return (f"{self.model} ({self.arm}) {self.name} = {self.value:.4f} {rel} floor "
                f"{self.floor:.4f} (short by {abs(self.gap or 0):.4f}) {self.detail}").rstrip()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["gap"] = self.gap
        return out


def judge(model: str, arm: str, name: str, value: float | None, floor: float,
          op: str = ">=", detail: str = "") -> Check:
    """A check that fails closed: a value that cannot be computed never passes."""
    ok = value is not None and np.isfinite(value) and (
        value >= floor if op == ">=" else value <= floor)
    return Check(model, arm, name, None if value is None else float(value), float(floor), op,
                 bool(ok), detail)


@dataclass
class Evaluated:
    """One shipped model scored on its held-out split."""

    arm: str
    tag: str
    metadata: dict[str, Any]
    estimator: Any
    splits: Splits
    proba: np.ndarray
    threshold: float
    report: dict[str, Any] = field(default_factory=dict)


def rebuild_splits(metadata: dict[str, Any]) -> Splits:
    """Re-derive the exact splits the model was trained with from its recorded data spec."""
    if "data_spec" not in metadata:
        raise ValueError("model metadata has no data_spec: cannot find its held-out data")
    return load_splits(DataConfig.model_validate(metadata["data_spec"]))


def evaluate(arm: str, tag: str, metadata: dict[str, Any], estimator: Any) -> Evaluated:
    """Score the model on its held-out test split at its own saved threshold."""
    splits = rebuild_splits(metadata)
    X = splits.test[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    proba = estimator.predict_proba(X)[:, 1]
    threshold = float(metadata["threshold"])
    return Evaluated(arm, tag, metadata, estimator, splits, proba, threshold)


def data_checks(ev: Evaluated) -> list[Check]:
    """The held-out split is the recorded one, differs from training, and shares no rows."""
    recorded = ev.metadata.get("split_hashes", {})
    test_hash, train_hash = frame_hash(ev.splits.test), frame_hash(ev.splits.train)
    shared = len(row_hashes(ev.splits.test) & row_hashes(ev.splits.train))
    return [
        Check(ev.tag, ev.arm, "data:test_hash_matches_training_record", None, None, "==",
              test_hash == recorded.get("test"), f"test split {test_hash[:12]}"),
        Check(ev.tag, ev.arm, "data:train_hash_matches_training_record", None, None, "==",
              train_hash == recorded.get("train"), f"train split {train_hash[:12]}"),
        Check(ev.tag, ev.arm, "data:test_differs_from_train", None, None, "!=",
              test_hash != recorded.get("train")),
        Check(ev.tag, ev.arm, "data:rows_shared_with_train", float(shared), 0.0, "<=",
              shared == 0, f"{shared} test rows also in train"),
    ]


def metric_checks(ev: Evaluated, cfg: GateConfig) -> list[Check]:
    """Overall floors, then slice floors where the slice has enough of both classes."""
    y = ev.splits.test[LABEL].to_numpy()
    overall = metrics(y, ev.proba, ev.threshold)
    ev.report["overall"] = overall
    checks = [judge(ev.tag, ev.arm, name, overall.get(name), floor,
                    detail=f"(n={overall['num_samples']})")
              for name, floor in cfg.floors.items()]
    ev.report["slices"] = {}
    for slice_name, select in SLICES.items():
        mask = select(ev.splits.test).to_numpy()
        m = metrics(y[mask], ev.proba[mask], ev.threshold)
        ev.report["slices"][slice_name] = m
        n_fraud, n_legit = m["num_fraud"], m["num_samples"] - m["num_fraud"]
        if n_fraud < cfg.slices.min_fraud or n_legit < cfg.slices.min_legit:
            continue
        checks += [judge(ev.tag, ev.arm, f"slice:{slice_name}:{name}", m.get(name), floor,
                         detail=f"(n={m['num_samples']}, fraud={n_fraud})")
                   for name, floor in cfg.slices.floors.items()]
    return checks


def non_inferiority_checks(champion: Evaluated, challenger: Evaluated,
                           cfg: GateConfig) -> list[Check]:
    """The challenger within a margin of the champion on the same held-out rows."""
    if frame_hash(champion.splits.test) != frame_hash(challenger.splits.test):
        return [Check(challenger.tag, challenger.arm, "non_inferiority:same_test_split", None,
                      None, "==", False, "models were trained on different data: retrain both")]
    a = champion.report.get("overall") or {}
    b = challenger.report.get("overall") or {}
    out = []
    for name, margin in cfg.non_inferiority.margins.items():
        floor = None if a.get(name) is None else a[name] - margin
        out.append(judge(challenger.tag, challenger.arm, f"non_inferiority:{name}", b.get(name),
                         floor if floor is not None else float("inf"),
                         detail=f"(champion {a.get(name)}, margin {margin})"))
    return out


def behaviour_checks(ev: Evaluated, cfg: GateConfig) -> list[Check]:
    """user_id never changes the score; raising risk features does not lower it beyond tolerance."""
    checks = []
    t1 = Transaction(**EXAMPLE_TRANSACTION)
    t2 = Transaction(**{**EXAMPLE_TRANSACTION, "user_id": "someone_else_entirely"})
    p = ev.estimator.predict_proba(np.array([t1.features(), t2.features()]))[:, 1]
    checks.append(judge(ev.tag, ev.arm, "behaviour:user_id_invariance", abs(p[0] - p[1]), 0.0,
                        "<="))
    # The service scores small batches with a compiled copy of the trees, and a forest's large
    # ones tree by tree (fraud/serving/fastpredict.py): both must agree.
    X = ev.splits.test[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    served = scorer(ev.estimator)
    sample = X[: min(len(X), 4000)]
    chunks = [chunk for size in (8, 64, 250, 500)  # the compiled walk's sizes and beyond
              for chunk in np.array_split(sample, max(1, len(sample) // size))]
    diff = max(float(np.max(np.abs(served(chunk) - ev.estimator.predict_proba(chunk)[:, 1])))
               for chunk in chunks)
    checks.append(judge(ev.tag, ev.arm, "behaviour:served_scorer_matches_estimator", diff,
                        1e-9, "<=", "(max |served - predict_proba| over test rows, 8, 64, "
                        "~250 and ~500 per call)"))
    b = cfg.behaviour
    rng = np.random.default_rng(b.seed)
    rows = X[rng.choice(len(X), size=min(b.sample_rows, len(X)), replace=False)]
    base = ev.estimator.predict_proba(rows)[:, 1]
    for feature, (op, amount) in b.perturbations.items():
        f = FEATURES_BY_NAME.get(feature)
        if f is None or f.categorical or f.kind == "boolean":
            checks.append(Check(ev.tag, ev.arm, f"behaviour:monotone_{feature}", None, None,
                                "<=", False, "configs/gate.yaml perturbs a feature that "
                                "configs/features.yaml does not define as a number"))
            continue
        j = FEATURE_NAMES.index(feature)
        moved = rows.copy()
        moved[:, j] = moved[:, j] + amount if op == "add" else moved[:, j] * amount
        high = FEATURES_BY_NAME[feature].high
        if high is not None:
            moved[:, j] = np.minimum(moved[:, j], high)
        after = ev.estimator.predict_proba(moved)[:, 1]
        rate = float(np.mean(after < base - b.tolerance))
        checks.append(judge(ev.tag, ev.arm, f"behaviour:monotone_{feature}", rate,
                            b.max_violation_rate, "<=",
                            f"(share of rows whose score drops > {b.tolerance} when "
                            f"{feature} {op} {amount})"))
    return checks


def build_report(checks: list[Check], evaluated: dict[str, Evaluated], errors: list[str],
                 session_ok: bool) -> dict[str, Any]:
    """The gate report: every check with value, floor and verdict; fails closed."""
    models: dict[str, Any] = {}
    for arm, ev in evaluated.items():
        mine = [c for c in checks if c.model == ev.tag]
        failures = [c.line() for c in mine if not c.passed]
        models[ev.tag] = {
            "arm": arm,
            "role": ev.metadata.get("role"),
            "passed": bool(mine) and not failures and session_ok,
            "failures": failures or ([] if session_ok else errors[:5]),
            "threshold": ev.threshold,
            # how training chose it: rule, settings, chosen point and validation curve
            "threshold_rule": ev.metadata.get("threshold_choice")
                              or {"rule": ev.metadata.get("threshold_rule")},
            "data_hashes": {k: v for k, v in ev.metadata.get("split_hashes", {}).items()},
            "mlflow_run_id": ev.metadata.get("mlflow_run_id"),
            "evaluation": ev.report,
        }
    return {
        "passed": session_ok and bool(models) and all(m["passed"] for m in models.values()),
        "models": models,
        "checks": [c.to_json() for c in checks],
        "errors": errors,
    }


def table(report: dict[str, Any]) -> str:
    """The gate table for the terminal."""
    lines = [f"{'model':<30}{'check':<42}{'value':>9}{'floor':>9}  verdict", "-" * 98]
    for c in report["checks"]:
        value = "n/a" if c["value"] is None else f"{c['value']:.4f}"
        floor = "" if c["floor"] is None else f"{c['op']}{c['floor']:.3f}"
        lines.append(f"{c['model']:<30}{c['name']:<42}{value:>9}{floor:>9}  "
                     f"{'pass' if c['passed'] else 'FAIL'}")
    lines.append(f"GATE {'PASSED' if report['passed'] else 'FAILED'}")
    return "\n".join(lines)


def write(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))

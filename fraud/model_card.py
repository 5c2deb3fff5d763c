"""The model card of the two served models: what they are for, what they were trained and judged
on, how well they did (overall and per slice), their thresholds, and what to be careful about.

One rule for both places it is made: `make build` (gating/build.py) writes it into the bento,
and the service makes it at start-up when no card for its models is bundled. Inputs are the
models' BentoML metadata (training/registry.py) and the gate report (gating/core.py); the
output is JSON-clean (None, never NaN); fraud/report/card.py renders it as markdown.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CARD_VERSION = 1
METRICS = ("num_samples", "num_fraud", "flag_rate", "precision", "recall", "f1", "roc_auc",
           "average_precision")
INTENDED_USE = {
    "purpose": "Real-time fraud scores for single payment transactions, to flag them for review "
               "or step-up checks, with a sticky per-user champion/challenger A/B test.",
    "decision": "is_fraud is fraud_probability >= the model's own threshold (chosen at "
                "training time on the validation split, never per request).",
    "users": "Payment risk teams and the systems that call POST /predict.",
    "out_of_scope": [
        "Decisions about a person (credit, account closure) without human review.",
        "Transactions unlike the training data (other features, currencies or channels); "
        "GET /drift says when live traffic has moved away from it.",
        "Probabilities as calibrated fraud rates: they rank transactions; the threshold, not "
        "the raw score, is what was validated.",
    ],
}


def _num(value: Any) -> Any:
    """JSON-clean numbers: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metrics(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not values:
        return None
    return {k: _num(values[k]) for k in METRICS if k in values}


def _gate_entry(tag: str, report: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the gate report says of `tag`: verdict, held-out metrics and its checks."""
    if report is None:
        return {"judged": False, "passed": None, "why": "no gate report"}
    entry = (report.get("models") or {}).get(tag)
    if entry is None:
        return {"judged": False, "passed": None, "why": "this model is not in the gate report"}
    evaluation = entry.get("evaluation") or {}
    slices = evaluation.get("slices") or {}
    checks = [{"name": c.get("name"), "value": _num(c.get("value")),
               "floor": _num(c.get("floor")), "op": c.get("op"), "passed": c.get("passed")}
              for c in report.get("checks") or () if c.get("model") == tag]
    return {
        "judged": True,
        "passed": bool(entry.get("passed")),
        "failures": list(entry.get("failures") or ()),
        "threshold": _num(entry.get("threshold")),
        "data_hashes": dict(entry.get("data_hashes") or {}),
        "overall": _metrics(evaluation.get("overall")),
        "slices": {name: _metrics(m) for name, m in slices.items()},
        "checks": checks,
    }


def _model(arm: str, tag: str, meta: Mapping[str, Any],
           report: Mapping[str, Any] | None) -> dict[str, Any]:
    metrics = meta.get("metrics") or {}
    return {
        "arm": arm,
        "tag": tag,
        "role": meta.get("role"),
        "estimator": meta.get("estimator"),
        "features": list(meta.get("features") or ()),
        # names, types, ranges and categories (configs/features.yaml) and their hash
        "schema": list(meta.get("schema") or ()),
        "schema_hash": meta.get("schema_hash"),
        "threshold": _num(meta.get("threshold")),
        "threshold_rule": meta.get("threshold_rule"),
        # the rule's settings, the chosen point and the validation curve (training metadata)
        "threshold_choice": meta.get("threshold_choice"),
        "training_metrics": {"validation": _metrics(metrics.get("validation")),
                             "test": _metrics(metrics.get("test"))},
        "mlflow": {"run_id": meta.get("mlflow_run_id"),
                   "registered_model": meta.get("mlflow_registered_model"),
                   "model_version": meta.get("mlflow_model_version")},
        # (not the tracking URI: the card is open to anyone, a URI may carry credentials)
        "library_versions": dict(meta.get("library_versions") or {}),
        "drift_reference": bool(meta.get("drift_reference")),
        "gate": _gate_entry(tag, report),
    }


def _data(models: list[dict[str, Any]], metas: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The data spec and splits; both models should share them (the gate compares them)."""
    specs = [m.get("data_spec") for m in metas]
    hashes = [m.get("split_hashes") for m in metas]
    return {
        "spec": specs[0] if specs else None,
        "split_sizes": (metas[0].get("split_sizes") if metas else None),
        "split_hashes": hashes[0] if hashes else None,
        # each split's first and last timestamp (data with a timestamp column), and the rows
        # a grouped time split left out
        "split_ranges": metas[0].get("split_ranges") if metas else None,
        "rows_dropped_by_grouping": metas[0].get("rows_dropped_by_grouping") if metas else None,
        "same_for_all_models": all(s == specs[0] for s in specs)
                               and all(h == hashes[0] for h in hashes),
        "held_out": "The gate re-derives the test split from the data spec, checks its hash "
                    "against the training record and that it shares no row with training.",
    }


def _caveats(models: list[dict[str, Any]], data: Mapping[str, Any],
             report: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    spec = data.get("spec") or {}
    if spec.get("source") == "generator":
        shift = (spec.get("generator") or {}).get("shift")
        out.append("Trained and judged on synthetic transactions from the built-in generator "
                   f"(seed {spec.get('seed')}, shift {shift}): the metrics say how well the "
                   "models learn that generator, not how they do on real payments.")
    elif spec.get("source") in ("csv", "parquet"):
        how = ("by time (train oldest, test newest)" if spec.get("split") == "time"
               else "at random")
        grouped = ", no card in two splits" if spec.get("group_by_entity") else ""
        out.append(f"Trained and judged on {spec.get('source')} data split {how}{grouped}: "
                   "the metrics hold for traffic like that file's.")
    if not data.get("same_for_all_models"):
        out.append("The models were trained on different data or splits: their metrics are "
                   "not comparable.")
    if report is None:
        out.append("No gate report: the held-out metrics below are missing and nothing here "
                   "was verified by the gate.")
    elif not report.get("passed"):
        out.append("The gate report did not pass: the service refuses to score until it does.")
    for m in models:
        gate = m["gate"]
        if report is not None and not gate["judged"]:
            out.append(f"{m['tag']} ({m['arm']}) is not in the gate report: it was not judged "
                       "(run `make gate`).")
        if gate["judged"] and gate["threshold"] is not None and m["threshold"] is not None \
                and abs(gate["threshold"] - m["threshold"]) > 1e-12:
            out.append(f"{m['tag']}: the gate judged threshold {gate['threshold']}, the model "
                       f"carries {m['threshold']}.")
        judged = {c["name"].split(":")[1] for c in gate.get("checks", ())
                  if str(c.get("name", "")).startswith("slice:")}
        small = sorted(set(gate.get("slices") or {}) - judged)
        if small:
            out.append(f"{m['tag']}: slices too small to hold to a floor (few fraud or legit "
                       f"rows), reported only: {', '.join(small)}.")
        if not m["drift_reference"]:
            out.append(f"{m['tag']} carries no drift reference: GET /drift cannot watch it.")
    rules = sorted({str(m.get("threshold_rule") or "max_f1") for m in models})
    words = {"max_f1": "maximise F1", "cost": "minimise the expected cost",
             "alert_budget": "keep within the alert budget"}
    out.append(f"Thresholds {' / '.join(words.get(r, r) for r in rules)} on the validation "
               "split at the training data's fraud rate; a different live fraud rate moves "
               "precision and the flag rate.")
    out.append("Labels arrive late (POST /feedback): live precision and recall lag the "
               "decisions; the A/B statistics count labelled users only.")
    return out


def build(models_metadata: Mapping[str, Mapping[str, Any]],
          gate_report: Mapping[str, Any] | None, *, generated_by: str = "") -> dict[str, Any]:
    """The card of the served models.

    `models_metadata`: arm -> {"tag": "name:version", "metadata": the BentoML model's metadata};
    `gate_report`: the gate's JSON report, or None when there is none (the card says so).
    """
    arms = sorted(models_metadata)
    metas = [models_metadata[a].get("metadata") or {} for a in arms]
    models = [_model(a, str(models_metadata[a]["tag"]), meta, gate_report)
              for a, meta in zip(arms, metas, strict=True)]
    data = _data(models, metas)
    return {
        "card_version": CARD_VERSION,
        "service": "fraudserve",
        "generated_by": generated_by,
        "intended_use": INTENDED_USE,
        "models": models,
        "data": data,
        "gate": None if gate_report is None else {
            "passed": bool(gate_report.get("passed")),
            "checks": len(gate_report.get("checks") or ()),
            "failed": sum(1 for c in gate_report.get("checks") or () if not c.get("passed")),
            "errors": list(gate_report.get("errors") or ()),
        },
        "caveats": _caveats(models, data, gate_report),
    }


HIDDEN = ("each model's threshold, and the validation curve it was chosen on, are shown with "
          "an admin key only: they mark the decision edge to probe")
_JUDGED_OTHER = re.compile(r"the gate judged threshold \S+, the model carries \S+\.")


def public(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card without its thresholds (GET /model-card without an admin key): each model's
    and the gate's threshold are null, the threshold choice keeps its rule and settings but
    not its chosen point or curve, and no caveat quotes a threshold."""
    out = copy.deepcopy(dict(card))
    for m in out.get("models") or ():
        m["threshold"] = None
        choice = m.get("threshold_choice")
        if isinstance(choice, dict):
            m["threshold_choice"] = {k: v for k, v in choice.items()
                                     if k not in ("chosen", "curve")}
        if isinstance(m.get("gate"), dict) and "threshold" in m["gate"]:
            m["gate"]["threshold"] = None
    out["caveats"] = [_JUDGED_OTHER.sub("the gate judged another threshold than the model "
                                        "carries.", c) for c in out.get("caveats") or ()]
    out["thresholds_hidden"] = HIDDEN
    return out


def tags(card: Mapping[str, Any]) -> dict[str, str]:
    """arm -> tag of the models a card describes (to tell whether it fits the served ones)."""
    return {m["arm"]: m["tag"] for m in card.get("models", ())}


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at `path`, or None when it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def for_served(models_metadata: Mapping[str, Mapping[str, Any]], card_file: Path,
               gate_report_file: Path) -> tuple[dict[str, Any], str]:
    """(card, source) for the models being served: the card `make build` bundled when it
    describes exactly these models ("build"), else one made now ("startup") from their
    metadata and the gate report, so the card never describes other models."""
    bundled = read_json(card_file)
    served = {arm: str(m["tag"]) for arm, m in models_metadata.items()}
    if bundled is not None and tags(bundled) == served:
        return bundled, "build"
    made = build(models_metadata, read_json(gate_report_file),
                 generated_by="the service at start-up, from the served models' metadata "
                              "and the gate report")
    return made, "startup"


# -- Markdown -----------------------------------------------------------------------------------

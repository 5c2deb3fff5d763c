"""Published CRD schemas as JSON Schema, for validating our custom objects offline.

The copies in tests/deploy/schemas/<Kind>.json are each CRD's `openAPIV3Schema` (the served,
stored version), taken unchanged from the project that publishes the CRD, with a `$comment`
naming the repository, tag, commit and path (also listed in schemas/SOURCES.md). Regenerate
one with:

    python tests/deploy/crds.py <crd.yaml> "<repo> <tag> <commit> <path>" > schemas/<Kind>.json

A CRD's schema is what the API server prunes with, not what it rejects: an unknown field is
silently dropped there. `strict()` makes the check as strict as kubernetes-validate's strict
mode (kubeconform does the same): every object schema that lists its properties and does not
say `x-kubernetes-preserve-unknown-fields` refuses other properties, so a misspelt field
fails here instead of vanishing in the cluster. `nullable: true` becomes a JSON-Schema null.
"""

from __future__ import annotations

import copy
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def extract(crd: dict[str, Any], source: str) -> dict[str, Any]:
    """The stored version's openAPIV3Schema of a CustomResourceDefinition."""
    assert crd["kind"] == "CustomResourceDefinition", crd["kind"]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    names = crd["spec"]["names"]
    return {"$comment": f"{names['kind']} {crd['spec']['group']}/{version['name']} "
                        f"from {source}",
            "x-fraudserve-apiVersion": f"{crd['spec']['group']}/{version['name']}",
            **schema}


def strict(node: Any) -> Any:
    """A copy that refuses unknown fields where the CRD lists the known ones."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if isinstance(out.get("pattern"), str):
        out["pattern"] = go_regex(out["pattern"])
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def go_regex(pattern: str) -> str:
    """A Go (RE2) pattern Python's re reads the same way: RE2 allows a flag group such as
    `(?i)` after `^`; Python wants global flags first."""
    for flags in ("(?i)", "(?s)", "(?m)"):
        if flags in pattern and not pattern.startswith(flags):
            pattern = flags + pattern.replace(flags, "", 1)
    return pattern


@cache
def load(kind: str) -> dict[str, Any]:
    """The strict schema of a committed copy, by kind."""
    return strict(json.loads((SCHEMAS / f"{kind}.json").read_text()))


@cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    """A compiled validator for the strict schema (OpenAPI v3 schemas read as draft 7)."""
    return jsonschema.Draft7Validator(load(kind))


def kinds() -> set[str]:
    return {p.stem for p in SCHEMAS.glob("*.json")}


def api_version(kind: str) -> str:
    return json.loads((SCHEMAS / f"{kind}.json").read_text())["x-fraudserve-apiVersion"]


if __name__ == "__main__":
    doc = yaml.safe_load(Path(sys.argv[1]).read_text())
    json.dump(extract(doc, sys.argv[2]), sys.stdout, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")

"""The Swagger page's words that BentoML would otherwise fill with its own: the version (the
package's, from pyproject.toml), the contact and licence (pyproject.toml's
[tool.fraudserve.openapi]), the tags' descriptions, and a one-line summary on every
operation (BentoML gives its APIs none: the first sentence of the docstring becomes it).

Left to BentoML, the page said version "None", "Contact BentoML Team" and "BentoML Service
API endpoints for inference" (issue 23); tests/browser/test_swagger.py looks for them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from fraud.config import PROJECT_ROOT

PACKAGE = "fraudserve"
TAGS = {
    "Service APIs": "Scoring (/predict, /predict_batch, /explain, needing a `score` key) and "
                    "labels (/feedback, a `label` key).",
    "Infrastructure": "Liveness, readiness and Prometheus metrics, open to the cluster.",
}
# The routes BentoML adds, which carry a description but no summary.
SUMMARIES = {
    "/healthz": "Liveness (the deprecated name of /livez)",
    "/livez": "Liveness: the process answers",
    "/readyz": "Readiness: gated models and a ledger that takes writes",
    "/metrics": "Prometheus metrics of this worker set",
}


def project_info(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """version, contact and license: pyproject.toml's (the source tree and the bento both
    carry it), else the installed package's version."""
    info: dict[str, Any] = {}
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        data = {}
    project = data.get("project") or {}
    openapi = ((data.get("tool") or {}).get(PACKAGE) or {}).get("openapi") or {}
    version = project.get("version")
    if version is None:
        try:
            version = metadata.version(PACKAGE)
        except metadata.PackageNotFoundError:
            version = "unknown"
    info["version"] = str(version)
    for key in ("contact", "license"):
        if openapi.get(key):
            info[key] = dict(openapi[key])
    return info


def one_line(text: str, limit: int = 120) -> str:
    """The first sentence (or clause before a colon) of `text`, on one line."""
    flat = " ".join(text.split())
    first = re.split(r"(?<=[.!?])\s|:\s", flat, maxsplit=1)[0].rstrip(".")
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "…"


def brand(doc: dict[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
    """`doc` with our version, contact, licence, tag texts and a summary on every operation."""
    out_info = doc.setdefault("info", {})
    out_info.update({k: v for k, v in info.items() if k in ("version", "contact", "license")})
    if "contact" not in info:
        out_info.pop("contact", None)  # never BentoML's
    for tag in doc.get("tags") or ():
        if tag.get("name") in TAGS:
            tag["description"] = TAGS[tag["name"]]
    for path, item in (doc.get("paths") or {}).items():
        for op in item.values():
            if not isinstance(op, dict) or op.get("summary"):
                continue
            text = SUMMARIES.get(path) or one_line(op.get("description") or "")
            op["summary"] = text or path
    return doc

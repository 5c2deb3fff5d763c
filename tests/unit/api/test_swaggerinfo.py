"""The Swagger page's version, contact, licence, tags and summaries are the project's, never
BentoML's boilerplate (issue 23: version "None", "Contact BentoML Team", "BentoML Service
API endpoints for inference", scoring operations without a summary)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml
from test_openapi import LIMITS, RATE, Toy

from fraud.api.openapi import published
from fraud.api.swaggerinfo import brand, one_line, project_info
from fraud.config import PROJECT_ROOT

BOILERPLATE = ("BentoML Team", "contact@bentoml.com", "BentoML Service API endpoints for "
               "inference")


def test_the_project_info_is_pyprojects() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    info = project_info()
    assert info["version"] == project["project"]["version"]
    assert info["contact"]["name"].startswith("fraudserve") and info["license"]["name"]
    bundled = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())["include"]
    assert "pyproject.toml" in bundled  # the image reads the same file


def test_without_a_pyproject_the_installed_version(tmp_path: Path) -> None:
    info = project_info(tmp_path)
    assert info["version"] not in ("None", "") and "contact" not in info


def test_one_line() -> None:
    assert one_line("Score one transaction (the flat body) with the user's A/B arm.") == \
        "Score one transaction (the flat body) with the user's A/B arm"
    assert one_line("Why the model scores\n  this as it does: per-feature parts. More.") == \
        "Why the model scores this as it does"
    assert len(one_line("word " * 100)) <= 120


def test_no_boilerplate_is_left_and_every_operation_has_a_one_line_summary() -> None:
    raw = json.loads(json.dumps(Toy.openapi_spec.asdict()))
    assert raw["info"]["version"] == "None" and "BentoML Team" in json.dumps(raw)
    doc = published(keys_on=True, limits=LIMITS, rate=RATE, description="# fraudserve")(raw)
    text = json.dumps(doc)
    assert not any(b in text for b in BOILERPLATE), [b for b in BOILERPLATE if b in text]
    assert doc["info"]["version"] == project_info()["version"]
    assert doc["info"]["license"] == project_info()["license"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("summary") and "\n" not in op["summary"], (method, path)
    untouched = brand({"info": {"contact": {"name": "BentoML Team"}}}, {"version": "1"})
    assert untouched["info"] == {"version": "1"}

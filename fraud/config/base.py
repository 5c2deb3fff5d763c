"""Where configuration lives and how a YAML file is read (no side effects beyond reading)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(os.environ.get("FRAUDSERVE_CONFIG_DIR", PROJECT_ROOT / "configs"))


class Strict(BaseModel):
    """A config section that refuses unknown keys (a typo is an error, not a default)."""

    model_config = ConfigDict(extra="forbid")


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data

"""tests/deploy imports the project's `deploy` package, which pyproject.toml does not install
(it runs from the repository root: `python -m deploy.watch`). Put the root first on sys.path
so `deploy` is that package, not this test directory."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

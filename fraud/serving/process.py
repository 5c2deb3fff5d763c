"""Deployment settings read from the environment (paths and secrets, nothing else)."""

from __future__ import annotations

import os

from fraud.config import PROJECT_ROOT


def ledger_store() -> str:
    """FRAUDSERVE_LEDGER (a path, sqlite:/// or postgresql:// URL), else data/ledger.sqlite in
    the project."""
    env = os.environ.get("FRAUDSERVE_LEDGER")
    return env or str(PROJECT_ROOT / "data" / "ledger.sqlite")


def batching_enabled() -> bool:
    """FRAUDSERVE_BATCHING=0 sends single predictions to the router unbatched (benchmarks)."""
    return os.environ.get("FRAUDSERVE_BATCHING", "1") != "0"


def coalescing_enabled() -> bool:
    """FRAUDSERVE_COALESCE=0 sends every /predict alone to the router (benchmarks compare)."""
    return os.environ.get("FRAUDSERVE_COALESCE", "1") != "0"

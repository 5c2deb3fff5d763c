"""Deployment settings read from the environment (paths and secrets, nothing else)."""

from __future__ import annotations

import hmac
import os

from fraud.config import PROJECT_ROOT

ADMIN_KEY_ENV = "FRAUDSERVE_ADMIN_KEY"


def ledger_store() -> str:
    """FRAUDSERVE_LEDGER (a path, sqlite:/// or postgresql:// URL), else data/ledger.sqlite in
    the project."""
    env = os.environ.get("FRAUDSERVE_LEDGER")
    return env or str(PROJECT_ROOT / "data" / "ledger.sqlite")


def admin_key_ok(given: str | None) -> tuple[bool, str]:
    """(allowed, reason): admin routes need FRAUDSERVE_ADMIN_KEY set and quoted exactly."""
    expected = os.environ.get(ADMIN_KEY_ENV)
    if not expected:
        return False, f"admin routes are disabled: {ADMIN_KEY_ENV} is not set on the server"
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return False, "missing or wrong X-Admin-Key header"
    return True, ""


def batching_enabled() -> bool:
    """FRAUDSERVE_BATCHING=0 sends single predictions to the router unbatched (benchmarks)."""
    return os.environ.get("FRAUDSERVE_BATCHING", "1") != "0"

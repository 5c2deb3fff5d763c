"""Start-up guards on the ledger a process is about to open.

`require_shared_ledger`: with FRAUDSERVE_REQUIRE_SHARED_LEDGER=1 (set in the Kubernetes base), a
SQLite ledger is a start-up error. A SQLite file is one machine's: replicas on several nodes
(or pods with their own volumes) would each keep a ledger of their own, so each would judge
the experiment on its share of the traffic, and a rollback or a label stored by one would be
unknown to the others. The variable says "this deployment has more than one replica"; without
it the embedded default stays the zero-setup choice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from fraud.config import PROJECT_ROOT

REQUIRE_SHARED_ENV = "FRAUDSERVE_REQUIRE_SHARED_LEDGER"


class SharedLedgerRequired(RuntimeError):
    """FRAUDSERVE_REQUIRE_SHARED_LEDGER=1 and the ledger is not shared (a SQLite file)."""


def default_store(environ: Mapping[str, str] | None = None) -> str:
    """FRAUDSERVE_LEDGER, else the embedded default data/ledger.sqlite in the project (what the
    service opens: fraud/serving/process.py)."""
    env = os.environ if environ is None else environ
    return env.get("FRAUDSERVE_LEDGER") or str(PROJECT_ROOT / "data" / "ledger.sqlite")


def require_shared_ledger(store: str | os.PathLike[str],
                          environ: Mapping[str, str] | None = None) -> None:
    """Raise SharedLedgerRequired, saying why, if the deployment requires a shared ledger
    (FRAUDSERVE_REQUIRE_SHARED_LEDGER=1) and `store` is a SQLite file. Call it at start-up,
    before opening the Ledger."""
    env = os.environ if environ is None else environ
    flag = env.get(REQUIRE_SHARED_ENV, "").strip().lower()
    if flag in ("", "0", "false", "no", "off"):
        return
    if flag not in ("1", "true", "yes", "on"):
        raise ValueError(f"{REQUIRE_SHARED_ENV} must be 1 or 0, got {flag!r}")
    text = os.fspath(store)
    if re.match(r"postgres(ql)?(\+psycopg)?://", text):
        return
    raise SharedLedgerRequired(
        f"{REQUIRE_SHARED_ENV}=1 but the ledger is the SQLite file {text!r}: a SQLite ledger "
        "belongs to one machine, so several replicas would each count their own share of the "
        "experiment and never see each other's rollbacks or labels. Set FRAUDSERVE_LEDGER to "
        "the shared PostgreSQL (postgresql://user:pass@host:5432/db), or unset "
        f"{REQUIRE_SHARED_ENV} for a single-machine deployment")

"""Whether the service serves: only models the gate passed, and only while the ledger takes
writes (otherwise a request is refused, saying why: fraud/api/errors.py answers it)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Protocol

from fraud.config import PROJECT_ROOT

log = logging.getLogger("fraudserve.gate")
OVERRIDE_ENV = "FRAUDSERVE_ALLOW_UNGATED"


def report_path() -> Path:
    """FRAUDSERVE_GATE_REPORT, else reports/gate/gate_report.json in the project (or bento)."""
    env = os.environ.get("FRAUDSERVE_GATE_REPORT")
    return Path(env) if env else PROJECT_ROOT / "reports" / "gate" / "gate_report.json"


def check_gated(tags: list[str], path: Path | None = None) -> str | None:
    """None when every tag passed the gate in the report at `path`, else one line saying why."""
    path = path or report_path()
    if not path.exists():
        return f"no gate report at {path}: run `make gate` before serving these models"
    try:
        report = json.loads(path.read_text())
        models = report["models"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return f"gate report {path} is unreadable ({exc.__class__.__name__}): run `make gate`"
    for tag in tags:
        entry = models.get(tag)
        if entry is None:
            return f"model {tag} is not in the gate report {path}: run `make gate`"
        if not entry.get("passed"):
            failed = ", ".join(entry.get("failures", [])[:3]) or "see the report"
            return f"model {tag} FAILED the gate ({failed})"
    return None


def readiness_problem(tags: list[str]) -> str | None:
    """Like check_gated, but an explicit, loudly logged override lets local experiments serve."""
    problem = check_gated(tags)
    if problem and os.environ.get(OVERRIDE_ENV) == "1":
        log.warning("%s=1: SERVING UNGATED MODELS (%s). Never set this in an image.",
                    OVERRIDE_ENV, problem)
        return None
    return problem


# -- serving or refusing, per request ----------------------------------------------------------


class LedgerHealth(Protocol):
    """What readiness reads of the ledger (fraud.store.writer.Ledger)."""

    problem: str | None  # why the last write failed; None while writes work
    where: str


class NotServing(RuntimeError):
    """This worker refuses to score now; the message says why."""


class Ungated(NotServing):
    """The models did not pass the gate (or the gate report is missing)."""


class LedgerRefusing(NotServing):
    """The ledger refuses writes: answering would decide what is not kept."""


def is_ready(gate_problem: str | None, ledger: LedgerHealth) -> bool:
    """BentoML's /readyz: the models passed the gate and the ledger takes writes."""
    return gate_problem is None and ledger.problem is None


def check_serving(gate_problem: str | None, ledger: LedgerHealth | None = None) -> None:
    """Raise Ungated, or LedgerRefusing, when a request must be refused (without `ledger`:
    only the gate, for what stores nothing, like an explanation)."""
    if gate_problem:
        raise Ungated(f"service not ready: {gate_problem}")
    if ledger is not None and ledger.problem:
        raise LedgerRefusing(f"ledger unavailable ({ledger.where}): {ledger.problem}")

"""The gate's fixtures and its report. `pytest gating` (make gate) evaluates the exact models
the service will ship, resolved the way the service resolves them, and fails closed."""

from __future__ import annotations

import os
import traceback
from typing import Any

import pytest

from fraud.config import load_ab_config
from fraud.schema import ARMS
from fraud.serving.families import load_estimator
from fraud.serving.models import resolve_arms
from fraud.serving.readiness import report_path
from gating.core import Check, Evaluated, GateConfig, build_report, evaluate, load_gate_config
from gating.core import table as gate_table
from gating.core import write as write_report

_CHECKS: list[Check] = []
_EVALUATED: dict[str, Evaluated] = {}
_ERRORS: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    # A crashed gate must not leave an older passing report behind.
    path = report_path()
    if path.exists():
        path.unlink()


@pytest.fixture(scope="session")
def gate_cfg() -> GateConfig:
    return load_gate_config()


@pytest.fixture(scope="session")
def shipped() -> dict[str, Evaluated]:
    """Both arms' models, loaded from the BentoML store and scored on held-out data."""
    arms = resolve_arms(load_ab_config())
    for arm in ARMS:
        model = arms[arm]
        estimator = load_estimator(model.tag)  # sklearn, XGBoost or LightGBM
        _EVALUATED[arm] = evaluate(arm, model.tag, model.metadata, estimator)
    return _EVALUATED


@pytest.fixture
def record() -> Any:
    """Record checks for the report, then assert they all passed with readable reasons."""

    def _record(checks: list[Check]) -> None:
        _CHECKS.extend(checks)
        failures = [c.line() for c in checks if not c.passed]
        assert not failures, "gate failures:\n  " + "\n  ".join(failures)

    return _record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and report.when != "call":
        _ERRORS.append(f"{report.nodeid}: {report.longreprtext.splitlines()[-1:]}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ok = exitstatus == 0 and session.testscollected > 0
    report = build_report(_CHECKS, _EVALUATED, _ERRORS, ok)
    write_report(report, report_path())
    session.config._gate_report = report  # type: ignore[attr-defined]
    _log_to_mlflow(report)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    report = getattr(config, "_gate_report", None)
    if report is None:
        return
    terminalreporter.section("gate report")
    terminalreporter.write_line(gate_table(report))
    terminalreporter.write_line(f"report: {report_path()}")


def _log_to_mlflow(report: dict[str, Any]) -> None:
    """Attach the report to each model's MLflow run (best effort: tracking is not the gate)."""
    try:
        from mlflow import MlflowClient

        from fraud.config import mlflow_tracking_uri
    except ImportError:
        return
    for tag, model in report["models"].items():
        run_id = model.get("mlflow_run_id")
        if not run_id:
            continue
        uri = os.environ.get("MLFLOW_TRACKING_URI") or _EVALUATED[model["arm"]].metadata.get(
            "mlflow_tracking_uri") or mlflow_tracking_uri()
        try:
            client = MlflowClient(tracking_uri=uri)
            client.log_dict(run_id, report, "gate/gate_report.json")
            client.log_metric(run_id, "gate_passed", 1.0 if model["passed"] else 0.0)
            client.set_tag(run_id, "gate", "passed" if model["passed"] else "failed")
        except Exception:  # the gate's verdict stands even if tracking is down
            print(f"warning: could not log the gate report to MLflow run {run_id} of {tag}:\n"
                  f"{traceback.format_exc(limit=1)}")

"""Whether the service serves: the gate's verdict on the served models, the ledger's state, and
the refusal each request gets when it does not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraud.serving.readiness import (
    OVERRIDE_ENV,
    LedgerRefusing,
    NotServing,
    Ungated,
    check_gated,
    check_serving,
    is_ready,
    readiness_problem,
)


@dataclass
class LedgerState:
    problem: str | None = None
    where: str = "sqlite:/data/ledger.sqlite"


WRITES = LedgerState()
REFUSES = LedgerState(problem="OperationalError: disk I/O error")


def test_ready_takes_gated_models_and_a_ledger_that_takes_writes() -> None:
    assert is_ready(None, WRITES)
    assert not is_ready("model fraud_rf:1 FAILED the gate (f1)", WRITES)
    assert not is_ready(None, REFUSES)


def test_serving_raises_nothing_when_ready() -> None:
    check_serving(None, WRITES)
    check_serving(None)


def test_ungated_models_refuse_every_request_first() -> None:
    with pytest.raises(Ungated) as refused:
        check_serving("no gate report at /x: run `make gate`", REFUSES)
    assert str(refused.value) == "service not ready: no gate report at /x: run `make gate`"
    assert isinstance(refused.value, NotServing)


def test_a_refusing_ledger_refuses_what_stores_and_not_what_does_not() -> None:
    with pytest.raises(LedgerRefusing) as refused:
        check_serving(None, REFUSES)
    assert str(refused.value) == ("ledger unavailable (sqlite:/data/ledger.sqlite): "
                                  "OperationalError: disk I/O error")
    check_serving(None)  # an explanation stores nothing: no ledger given, no refusal


def _report(tmp_path: Path, models: dict) -> Path:
    path = tmp_path / "gate_report.json"
    path.write_text(json.dumps({"models": models}))
    return path


def test_the_gate_report_names_why_a_model_may_not_serve(tmp_path: Path) -> None:
    assert "no gate report" in check_gated(["rf:1"], tmp_path / "missing.json")
    path = _report(tmp_path, {"rf:1": {"passed": True}, "hgb:2": {"passed": False,
                                                                  "failures": ["f1", "auc"]}})
    assert check_gated(["rf:1"], path) is None
    assert check_gated(["rf:1", "hgb:2"], path) == "model hgb:2 FAILED the gate (f1, auc)"
    assert "not in the gate report" in check_gated(["rf:9"], path)
    (tmp_path / "bad.json").write_text("{not json")
    assert "unreadable" in check_gated(["rf:1"], tmp_path / "bad.json")


def test_the_override_serves_ungated_models_loudly(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FRAUDSERVE_GATE_REPORT", str(tmp_path / "missing.json"))
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    assert "no gate report" in readiness_problem(["rf:1"])
    monkeypatch.setenv(OVERRIDE_ENV, "1")
    assert readiness_problem(["rf:1"]) is None
    assert "SERVING UNGATED MODELS" in caplog.text

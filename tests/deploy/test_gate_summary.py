"""The gate report as Markdown: a failed check is shown with its value, floor and gap; a
missing report is a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy import gate_summary


def report(passed: bool) -> dict:
    check = {"model": "fraud_hgb:abc", "arm": "model_b", "name": "floor:f1", "value": 0.61,
             "floor": 0.7, "op": ">=", "passed": passed, "detail": "", "gap": -0.09}
    return {"passed": passed, "errors": [], "checks": [check],
            "models": {"fraud_hgb:abc": {"arm": "model_b", "role": "challenger",
                                         "passed": passed,
                                         "evaluation": {"overall": {"f1": 0.61}}}}}


def test_failed_check_is_named_with_value_floor_and_gap(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "gate_report.json"
    path.write_text(json.dumps(report(passed=False)))
    assert gate_summary.main([str(path)]) == 1
    text = capsys.readouterr().out
    assert "**FAILED**" in text
    assert "| `fraud_hgb:abc` | floor:f1 | 0.61 | >= | 0.7 | -0.09 |" in text
    assert "0 of 1 checks passed" in text


def test_passing_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "gate_report.json"
    path.write_text(json.dumps(report(passed=True)))
    assert gate_summary.main([str(path)]) == 0
    text = capsys.readouterr().out
    assert "**PASSED**" in text and "1 of 1 checks passed" in text
    assert "| model_b | challenger | `fraud_hgb:abc` | yes | 0.61 |" in text


def test_missing_report_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert gate_summary.main([str(tmp_path / "none.json")]) == 1
    assert "**FAILED**" in capsys.readouterr().out

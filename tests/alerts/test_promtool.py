"""Prometheus config and alert rules, checked and unit-tested with a real promtool.

promtool comes from the Debian package `prometheus` (`make sysdeps`). Outside CI a missing
promtool skips these tests; with CI set it is a failure, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT_ROOT / "configs" / "prometheus.yml"
RULES = PROJECT_ROOT / "configs" / "alerts.yml"
RULE_TESTS = sorted(Path(__file__).resolve().parent.glob("*_test.yml"))
DOCS = PROJECT_ROOT / "docs" / "alerts.md"
TIMEOUT_S = 120

# The reference implementation's latency rule: a histogram has no `quantile` label, so this
# selects nothing and can never fire.
BROKEN_LATENCY_EXPR = 'fraud_prediction_latency_seconds{quantile="0.95"} > 0.1'


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    msg = f"`{name}` not found on PATH; `make sysdeps` installs it (Debian package `prometheus`)"
    if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"{msg}. CI is set, so this is a failure, not a skip.")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def promtool() -> str:
    return _require_binary("promtool")


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd or PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"command: {' '.join(map(str, proc.args))}\nreturncode: {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


def _assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, _describe(proc)


def _load_rules(path: Path = RULES) -> list[dict]:
    data = yaml.safe_load(path.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _alert_names() -> set[str]:
    return {rule["alert"] for rule in _load_rules() if "alert" in rule}


# --------------------------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------------------------


@pytest.mark.alerts
def test_promtool_check_config(promtool: str, tmp_path: Path) -> None:
    # Run from an unrelated directory: rule_files must resolve relative to the config file.
    proc = _run([promtool, "check", "config", str(CONFIG)], cwd=tmp_path)
    _assert_ok(proc)
    assert "1 rule files found" in proc.stdout + proc.stderr, _describe(proc)


@pytest.mark.alerts
def test_promtool_check_rules(promtool: str) -> None:
    proc = _run([promtool, "check", "rules", str(RULES)])
    _assert_ok(proc)
    n_rules = len(_load_rules())
    assert f"{n_rules} rules found" in proc.stdout + proc.stderr, _describe(proc)


@pytest.mark.alerts
@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(promtool: str, test_file: Path, tmp_path: Path) -> None:
    proc = _run([promtool, "test", "rules", str(test_file)], cwd=tmp_path)
    _assert_ok(proc)
    assert "SUCCESS" in proc.stdout + proc.stderr, _describe(proc)


@pytest.mark.alerts
def test_prometheus_server_binary_runs() -> None:
    prometheus = _require_binary("prometheus")
    proc = _run([prometheus, "--version"])
    _assert_ok(proc)
    assert "prometheus, version" in proc.stdout + proc.stderr, _describe(proc)


def _latency_rule_case(tmp_path: Path, expr: str) -> Path:
    """A rules file with `expr` as FraudPredictionLatencyHigh, and a promtool test that feeds
    it histogram buckets with p95 = 242.5 ms and expects the alert to fire."""
    rules = {
        "groups": [
            {
                "name": "latency-under-test",
                "rules": [
                    {
                        "alert": "FraudPredictionLatencyHigh",
                        "expr": expr,
                        "for": "2m",
                        "labels": {"severity": "warning"},
                    }
                ],
            }
        ]
    }
    buckets = {"0.05": "0x20", "0.1": "0x20", "0.25": "0+60x20", "+Inf": "0+60x20"}
    series = [
        {
            "series": (
                f'fraud_prediction_latency_seconds_bucket{{model_version="model_a",le="{le}"}}'
            ),
            "values": values,
        }
        for le, values in buckets.items()
    ]
    series += [
        {
            "series": 'fraud_prediction_latency_seconds_count{model_version="model_a"}',
            "values": "0+60x20",
        },
        {
            "series": 'fraud_prediction_latency_seconds_sum{model_version="model_a"}',
            "values": "0+12x20",
        },
    ]
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "FraudPredictionLatencyHigh",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning", "model_version": "model_a"}}
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    test_file = tmp_path / "latency_test.yml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    return test_file


@pytest.mark.alerts
def test_reference_latency_rule_fails_promtool(promtool: str, tmp_path: Path) -> None:
    """The harness can fail: the reference's `quantile` rule is valid PromQL (check rules
    passes) but never fires on histogram data, so `promtool test rules` must fail."""
    test_file = _latency_rule_case(tmp_path, BROKEN_LATENCY_EXPR)

    checked = _run([promtool, "check", "rules", str(tmp_path / "rules.yml")], cwd=tmp_path)
    _assert_ok(checked)

    proc = _run([promtool, "test", "rules", str(test_file)], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, "promtool accepted the broken rule:\n" + _describe(proc)
    assert "FAILED" in out, _describe(proc)
    assert "FraudPredictionLatencyHigh" in out, _describe(proc)
    assert re.search(r"got:\s*\[\s*\]", out), _describe(proc)


@pytest.mark.alerts
def test_shipped_latency_rule_passes_the_same_case(promtool: str, tmp_path: Path) -> None:
    """Control for the test above: identical input and expectation, with the expression
    from configs/alerts.yml, passes."""
    (rule,) = [r for r in _load_rules() if r.get("alert") == "FraudPredictionLatencyHigh"]
    test_file = _latency_rule_case(tmp_path, rule["expr"])
    _assert_ok(_run([promtool, "test", "rules", str(test_file)], cwd=tmp_path))


# --------------------------------------------------------------------------------------------
# Static checks (no promtool needed)
# --------------------------------------------------------------------------------------------


def test_scrape_config_targets_the_service() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["rule_files"] == ["alerts.yml"]
    assert (CONFIG.parent / cfg["rule_files"][0]).resolve() == RULES.resolve()
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    job = jobs["fraudserve"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["localhost:3000"]
    interval = job.get("scrape_interval", cfg["global"]["scrape_interval"])
    match = re.fullmatch(r"(\d+)s", interval)
    assert match and 5 <= int(match.group(1)) <= 60, interval


def test_every_alert_has_severity_and_annotations() -> None:
    for rule in _load_rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"info", "warning", "critical"}, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            assert annotations.get(key), f"{name}: missing {key}"
        text = annotations["summary"] + annotations["description"]
        assert "model_" in text, f"{name}: annotations should name the arm"


def test_latency_rule_reads_histogram_buckets() -> None:
    (rule,) = [r for r in _load_rules() if r.get("alert") == "FraudPredictionLatencyHigh"]
    expr = " ".join(rule["expr"].split())
    assert "quantile=" not in expr
    assert "histogram_quantile(0.95," in expr
    assert "rate(fraud_prediction_latency_seconds_bucket[5m])" in expr
    assert "by (namespace, le, model_version)" in expr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test_file in RULE_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = _alert_names()
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"


def test_every_alert_is_documented() -> None:
    """Every alert's runbook link resolves to a `## <AlertName>` section of the doc it names
    (docs/alerts.md for most; LedgerDown's is in docs/kubernetes.md, beside the database)."""
    names = _alert_names()
    linked: set[str] = set()
    for rule in _load_rules():
        if "alert" not in rule:
            continue
        link = rule.get("annotations", {}).get("runbook", f"docs/alerts.md#{rule['alert']}")
        doc, _, anchor = link.partition("#")
        assert doc.startswith("docs/") and anchor == rule["alert"].lower(), link
        headings = set(re.findall(r"^##\s+(\w+)\s*$", (PROJECT_ROOT / doc).read_text(),
                                  flags=re.MULTILINE))
        assert rule["alert"] in headings, f"{rule['alert']}: no section in {doc}"
        linked.add(rule["alert"])
    assert linked == names


def test_every_rule_groups_by_namespace() -> None:
    """One Prometheus often watches several environments: every aggregation keeps the
    namespace, so one environment's traffic never hides another's silence."""
    for rule in _load_rules():
        expr = " ".join(rule["expr"].split())
        for clause in re.findall(r"\b(?:sum|min|max|avg|count)\s+by\s*\(([^)]*)\)", expr):
            assert "namespace" in clause, (rule.get("alert"), clause)
        for clause in re.findall(r"\bon\s*\(([^)]*)\)", expr):
            assert "namespace" in clause, (rule.get("alert"), clause)
        assert not re.search(r"\b(?:sum|min|max)\s*\(", expr) or "without" in expr, (
            rule.get("alert"), "an aggregation over every namespace")

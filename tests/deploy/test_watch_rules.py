"""The watch's plain parts: rules read from configs/alerts.yml and scoped to the new pods, the
checks' decisions on given answers, Flagger-style counting, and finding the new pods."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from deploy.watch import rules
from deploy.watch.__main__ import negate
from deploy.watch.checks import (
    ERROR,
    FAIL,
    INCONCLUSIVE,
    OK,
    Limits,
    Measure,
    Outcome,
    Selection,
    p95_expr,
    poll_state,
    requests_expr,
    share_5xx_expr,
)
from deploy.watch.judge import PASS, watch
from deploy.watch.kube import new_template_hash
from deploy.watch.prometheus import PrometheusError
from deploy.watch.rollback import undo_command


def test_default_rules_come_from_configs_alerts_and_exclude_no_predictions() -> None:
    checks = {c.name: c for c in rules.load()}
    assert set(checks) == set(rules.DEFAULT_RULES)
    assert "NoPredictions" not in checks  # no data is never the release's failure
    assert checks["ChallengerRolledBack"].hold_s == 0
    assert checks["ChampionErrorRateHigh"].hold_s == rules.seconds("2m")


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="NoSuchAlert"):
        rules.load(("NoSuchAlert",))


@pytest.mark.parametrize(("expr", "scoped"), [
    ("fraud_ab_rollback_active == 1", 'fraud_ab_rollback_active{ns="x"} == 1'),
    ('rate(fraud_scoring_errors_total{model_version="model_b"}[5m])',
     'rate(fraud_scoring_errors_total{ns="x", model_version="model_b"}[5m])'),
    ("absent_over_time(fraud_predictions_total[5m])",
     'absent_over_time(fraud_predictions_total{ns="x"}[5m])'),
    ("sum by (model_version) (up)", "sum by (model_version) (up)"),
])
def test_scope_adds_the_matcher_to_every_fraud_selector(expr: str, scoped: str) -> None:
    assert rules.scope(expr, 'ns="x"') == scoped


def test_durations() -> None:
    assert rules.seconds("1h30m") == 5400 and rules.seconds(None) == 0
    with pytest.raises(ValueError):
        rules.seconds("2 minutes")


def test_old_pods_are_the_negation_of_the_new() -> None:
    assert negate('pod_template_hash="abc"') == 'pod_template_hash!="abc"'
    with pytest.raises(SystemExit):
        negate('pod_template_hash=~"a|b"')


# -- the checks on given answers -------------------------------------------------------------

SEL = Selection(new='pod_template_hash="new"', old='pod_template_hash!="new"',
                namespace="ns")


def answers(new_req: float, old_req: float, new_5xx: float | None, old_5xx: float | None,
            new_p95: float | None = 0.01, old_p95: float | None = 0.01, firing: bool = False):
    """A query function answering the watch's expressions with these values."""
    w = Limits().window
    table = {requests_expr(SEL.matcher("new"), w): new_req,
             requests_expr(SEL.matcher("old"), w): old_req,
             share_5xx_expr(SEL.matcher("new"), w): new_5xx,
             share_5xx_expr(SEL.matcher("old"), w): old_5xx,
             p95_expr(SEL.matcher("new"), w): new_p95,
             p95_expr(SEL.matcher("old"), w): old_p95}

    def query(expr: str) -> list:
        if expr in table:
            value = table[expr]
            return [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
        return [{"metric": {}, "value": [0, "1"]}] if firing else []
    return query


def states(measure: Measure, query) -> dict[str, str]:
    return {o.name: o.state for o in measure.poll(query)}


def test_new_pods_worse_than_old_fail() -> None:
    got = states(Measure(SEL), answers(100, 100, new_5xx=0.5, old_5xx=0.0))
    assert got["http_5xx_share"] == FAIL and got["traffic"] == OK
    got = states(Measure(SEL), answers(100, 100, 0.0, 0.0, new_p95=0.9, old_p95=0.05))
    assert got["predict_p95_seconds"] == FAIL


def test_too_little_traffic_is_inconclusive_never_failure() -> None:
    got = states(Measure(SEL), answers(3, 100, new_5xx=1.0, old_5xx=0.0))
    assert got["traffic"] == INCONCLUSIVE and got["http_5xx_share"] == INCONCLUSIVE
    assert poll_state(Measure(SEL).poll(answers(0, 0, None, None, None, None))) == INCONCLUSIVE


def test_old_pods_as_bad_is_the_environment_not_the_release() -> None:
    got = states(Measure(SEL), answers(100, 100, new_5xx=0.5, old_5xx=0.49))
    assert got["http_5xx_share"] == INCONCLUSIVE
    got = states(Measure(SEL), answers(100, 0, new_5xx=0.5, old_5xx=None))  # no old pods
    assert got["http_5xx_share"] == FAIL


def test_a_rule_firing_before_the_deploy_is_exempt() -> None:
    measure = Measure(SEL, rules=rules.load(("ChallengerRolledBack",), hold_s=0))
    assert states(measure, answers(100, 100, 0, 0, firing=True))["ChallengerRolledBack"] == FAIL
    measure.exempt = {"ChallengerRolledBack"}
    assert states(measure, answers(100, 100, 0, 0, firing=True))["ChallengerRolledBack"] == OK


def test_rules_are_scoped_to_the_new_pods() -> None:
    measure = Measure(SEL, rules=rules.load(("ChallengerRolledBack",)))
    (rule,) = measure.scoped_rules()
    assert 'fraud_ab_rollback_active{namespace="ns", pod_template_hash="new"}' in rule.expr


def test_prometheus_errors_are_errors_not_failures() -> None:
    def down(expr: str) -> list:
        raise PrometheusError("connection refused")
    assert poll_state(Measure(SEL).poll(down)) == ERROR


# -- counting --------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(states_: list[str], minutes: float = 1.0, threshold: int = 3, error_limit: int = 4):
    """Watch a poll whose state is states_[i] at poll i (the last one repeats)."""
    clock = Clock()
    seq = iter(states_ + [states_[-1]] * 1000)

    def poll() -> list[Outcome]:
        return [Outcome("demo", next(seq))]

    verdict = watch(poll, minutes, 10, threshold=threshold, error_limit=error_limit,
                    clock=clock, sleep=clock.sleep, log=lambda _: None)
    return verdict, clock.now


def test_threshold_failed_polls_fail_and_need_not_be_in_a_row() -> None:
    verdict, at = run([FAIL, OK, FAIL, INCONCLUSIVE, FAIL, OK])
    assert verdict.outcome == FAIL and verdict.breached == "demo" and at == 40
    assert verdict.counts[FAIL] == 3 and verdict.polls == 5


def test_fewer_failed_polls_than_the_threshold_pass() -> None:
    verdict, at = run([FAIL, FAIL, OK])
    assert verdict.outcome == PASS and at == 60 and verdict.polls == 7


def test_quiet_or_blind_windows_are_inconclusive_never_failure() -> None:
    verdict, _ = run([INCONCLUSIVE])
    assert verdict.outcome == INCONCLUSIVE and verdict.counts[FAIL] == 0
    verdict, at = run([ERROR], error_limit=4)
    assert verdict.outcome == INCONCLUSIVE and at == 30 and verdict.answered == 0
    verdict, _ = run([OK, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE, OK])
    assert verdict.outcome == INCONCLUSIVE  # 2 of 7 polls had a verdict


# -- the new pods, and the undo --------------------------------------------------------------

def fake_kubectl(tmp_path: Path, deployment: dict, replicasets: dict) -> str:
    """kubectl is the one tool that needs a cluster: a stand-in answering two `get`s."""
    script = tmp_path / "kubectl"
    script.write_text(
        f"#!{sys.executable}\nimport sys, json\n"
        f"d = {json.dumps(deployment)!r}\nr = {json.dumps(replicasets)!r}\n"
        "print(d if sys.argv[2] == 'deployment' else r)\n")
    script.chmod(0o755)
    return str(script)


def test_new_pods_are_the_current_replicasets(tmp_path: Path) -> None:
    rev = "deployment.kubernetes.io/revision"
    deployment = {"metadata": {"annotations": {rev: "7"}},
                  "spec": {"selector": {"matchLabels": {"app": "x"}}}}
    sets = {"items": [
        {"metadata": {"annotations": {rev: "6"}, "labels": {"pod-template-hash": "old"}}},
        {"metadata": {"annotations": {rev: "7"}, "labels": {"pod-template-hash": "new"}}}]}
    assert new_template_hash("fraudserve", "ns", fake_kubectl(tmp_path, deployment, sets)) \
        == "new"


def test_undo_command() -> None:
    assert undo_command("fraudserve", "prod-ns") == [
        "kubectl", "rollout", "undo", "deployment/fraudserve", "-n", "prod-ns"]

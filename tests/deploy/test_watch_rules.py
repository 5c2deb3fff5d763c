"""The watch's plain parts: rules read from configs/alerts.yml, scoping, and the hold rule."""

from __future__ import annotations

import pytest

from deploy.watch import rules
from deploy.watch.judge import FAIL, INCONCLUSIVE, PASS, watch
from deploy.watch.prometheus import PrometheusError
from deploy.watch.rollback import undo_command


def test_default_rules_come_from_configs_alerts_with_their_for() -> None:
    checks = {c.name: c for c in rules.load()}
    assert set(checks) == set(rules.DEFAULT_RULES)
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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(answers: list, hold: float, minutes: float = 1.0) -> tuple:
    """Watch one check whose query gives answers[i] at poll i (an exception is raised)."""
    check = rules.Check("Demo", "demo", hold)
    clock = Clock()
    polls = iter(answers + [answers[-1]] * 1000)

    def query(expr: str) -> list:
        answer = next(polls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    verdict = watch([check], query, minutes, 10, clock=clock, sleep=clock.sleep,
                    log=lambda _: None)
    return verdict, clock.now


SERIES = [{"metric": {}, "value": [0, "1"]}]


def test_breach_needs_the_condition_for_the_whole_hold() -> None:
    # Matches at 0 s and 10 s, gone at 20 s, back from 30 s: breached at 50 s (30 + 20).
    verdict, at = run([SERIES, SERIES, [], SERIES], hold=20)
    assert verdict.outcome == FAIL and verdict.breached == "Demo" and at == 50


def test_quiet_window_passes_and_blind_window_is_inconclusive() -> None:
    verdict, at = run([[]], hold=0)
    assert verdict.outcome == PASS and at == 60 and verdict.polls == 7
    verdict, _ = run([PrometheusError("down")], hold=0)
    assert verdict.outcome == INCONCLUSIVE and verdict.answered == 0


def test_undo_command() -> None:
    assert undo_command("fraudserve", "prod-ns") == [
        "kubectl", "rollout", "undo", "deployment/fraudserve", "-n", "prod-ns"]

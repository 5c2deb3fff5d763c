"""The experiment watch, one `tick` at a time, on a real SQLite ledger: the ledger's state in
the gauges, guardrail checks every check interval with their look stored, retention, and a
failing round that does not stop the next."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from fraud.config import ABConfig
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.experiment.watch import DAY_S, Watch
from fraud.store.writer import Ledger

ARMS = {"model_a": ArmModel("model_a", "fraud_rf:aaa", 0.7, {}),
        "model_b": ArmModel("model_b", "fraud_hgb:bbb", 0.4, {})}
CHECK_S = 2.0


class Gauges:
    """The metrics' calls, kept (fraud.serving.telemetry.Metrics in the service)."""

    def __init__(self) -> None:
        self.ledger: list[tuple[bool, int]] = []
        self.reports: list[dict[str, Any]] = []

    def ledger_state(self, up: bool, new_failures: int) -> None:
        self.ledger.append((up, new_failures))

    def publish(self, report: dict[str, Any]) -> None:
        self.reports.append(report)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as led:
        yield led


def watch_of(ledger: Ledger, wall: Clock | None = None, **cfg: Any) -> tuple[Watch, Gauges]:
    cfg.setdefault("guardrails", {"check_interval_s": CHECK_S})
    experiment = Experiment(ABConfig(**cfg), ARMS, ledger)
    gauges = Gauges()
    return Watch(experiment, gauges, wall=wall or Clock()), gauges


def test_guardrails_are_checked_at_once_then_every_check_interval(ledger: Ledger) -> None:
    wall = Clock()
    watch, gauges = watch_of(ledger, wall)
    for now in (100.0, 101.0, 101.9, 102.0, 103.0, 104.5):
        wall.now += 1.0
        watch.tick(now)
    assert len(gauges.reports) == 3  # at 100, 102 and 104.5
    assert gauges.reports[0]["experiment"]["id"] == watch.experiment.id
    assert len(ledger.looks(watch.experiment.id)) == 3  # each check's look, for /report
    assert gauges.ledger == [(True, 0)] * 6  # every round, checked or not


def test_a_slow_look_spaces_the_next_ones_out_to_keep_looks_under_their_share(
        ledger: Ledger) -> None:
    experiment = Experiment(ABConfig(guardrails={"check_interval_s": CHECK_S}), ARMS, ledger)
    gauges = Gauges()
    spent = iter([0.0, 0.4, 10.0, 10.01, 20.0, 20.01])  # looks of 0.4 s, then of 0.01 s
    watch = Watch(experiment, gauges, wall=Clock(), timer=lambda: next(spent), look_share=0.05)
    for now in (100.0, 102.0, 104.0, 107.9, 108.0, 110.0):
        watch.tick(now)
    # 0.4 s / 5% = 8 s: the look at 100 delays the next to 108; that one took 0.01 s, so 110
    assert len(gauges.reports) == 3
    assert watch.check_gap() == CHECK_S


def test_a_look_another_worker_stored_just_now_is_not_stored_again(ledger: Ledger) -> None:
    wall = Clock()
    one, _ = watch_of(ledger, wall)
    two, _ = watch_of(ledger, wall)
    one.tick(0.0)
    wall.now += CHECK_S / 4  # within half a check interval of the first look
    two.tick(0.0)
    assert len(ledger.looks(one.experiment.id)) == 1


def test_a_refusing_ledger_is_probed_and_reported(ledger: Ledger,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    watch, gauges = watch_of(ledger)
    ledger.problem, ledger.write_failures = "OperationalError: disk I/O error", 3
    probes: list[bool] = []
    monkeypatch.setattr(ledger, "probe", lambda: probes.append(True))  # still refusing
    watch.tick(0.0)
    assert probes == [True] and gauges.ledger == [(False, 3)]
    monkeypatch.undo()  # the real probe: one small write, which works again
    watch.tick(1.0)
    assert ledger.problem is None
    ledger.write_failures += 1
    watch.tick(2.0)
    assert gauges.ledger == [(False, 3), (True, 0), (True, 1)]  # each failure counted once


def test_retention_deletes_decisions_and_looks_past_the_horizon(ledger: Ledger) -> None:
    wall = Clock()
    watch, _ = watch_of(ledger, wall, retention={"decisions_days": 30})
    kept = watch.experiment.record(["u1", "u2"], ["model_a", "model_b"], [0.9, 0.1], 5.0,
                                   "predict")
    watch.tick(0.0)
    assert all(ledger.lookup(p.request_id) for p in kept)
    assert len(ledger.looks(watch.experiment.id)) == 1
    wall.now += 31 * DAY_S
    watch.tick(CHECK_S)  # the next check stores its own look, then prunes the older ones
    assert not any(ledger.lookup(p.request_id) for p in kept)
    assert [look["ts"] for look in ledger.looks(watch.experiment.id)] == [wall.now]


def test_without_a_horizon_nothing_is_deleted(ledger: Ledger) -> None:
    wall = Clock()
    watch, _ = watch_of(ledger, wall, retention={"decisions_days": None})
    kept = watch.experiment.record(["u1"], ["model_a"], [0.9], 5.0, "predict")
    wall.now += 10_000 * DAY_S
    watch.tick(0.0)
    assert ledger.lookup(kept[0].request_id) is not None


def test_a_failing_round_is_logged_and_the_next_round_runs(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    watch, gauges = watch_of(ledger)

    def broken() -> None:
        raise RuntimeError("shared state unreadable")

    monkeypatch.setattr(watch.experiment, "refresh", broken)
    with caplog.at_level(logging.ERROR, logger="fraudserve"):
        watch.tick(0.0)
    assert "experiment watch failed" in caplog.text and gauges.reports == []
    monkeypatch.undo()
    watch.tick(0.5)  # the failed round did not count as a check
    assert len(gauges.reports) == 1


def test_a_breach_rolls_the_challenger_back_and_the_gauges_see_it(ledger: Ledger) -> None:
    watch, gauges = watch_of(ledger, guardrails={
        "check_interval_s": CHECK_S, "min_decisions": 50, "min_users": 10,
        "max_p95_latency_ms": 20})
    exp = watch.experiment
    for i in range(400):  # the challenger is 10x slower on every call
        arm = exp.route(f"u{i}")
        exp.record([f"u{i}"], [arm], [0.1], 50.0 if arm == "model_b" else 5.0, "predict")
    watch.tick(0.0)
    assert gauges.reports[-1]["experiment"]["rolled_back"] is True
    assert exp.state.rolled_back and "latency" in exp.state.rollback_reason
    look = ledger.looks(exp.id)[-1]
    assert look["guard"]["rolled_back"] is True  # the report page's history shows it


def test_run_ticks_every_interval_until_stopped(ledger: Ledger) -> None:
    experiment = Experiment(ABConfig(guardrails={"check_interval_s": 0.01}), ARMS, ledger)
    gauges = Gauges()
    watch = Watch(experiment, gauges, interval_s=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=watch.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(gauges.reports) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(gauges.reports) >= 2

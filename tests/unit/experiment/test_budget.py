"""One worker's exploration lease: spends only what it leased, refills off the request path,
loses yesterday's lease, stops asking once the day is spent."""

from __future__ import annotations

from collections.abc import Callable

from fraud.config.ab import ExplorationConfig
from fraud.experiment.budget import Budget, Explorer, day_start, explorer, utc_day
from fraud.experiment.exploration import draw

CFG = ExplorationConfig(enabled=True, rate=0.2, max_amount=50.0, daily_budget=120.0)
DAY = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class FakeLedger:
    """The day's budget row, as the ledger's conditional UPDATE keeps it."""

    def __init__(self) -> None:
        self.leased: dict[str, float] = {}
        self.calls = 0

    def lease_exploration(self, day: str, want: float, budget: float) -> float:
        self.calls += 1
        grant = min(want, budget - self.leased.get(day, 0.0))
        if grant <= 0:
            return 0.0
        self.leased[day] = self.leased.get(day, 0.0) + grant
        return grant


def budget(ledger: FakeLedger, now: list[float]) -> tuple[Budget, list[Callable[[], None]]]:
    queued: list[Callable[[], None]] = []
    return Budget(CFG, ledger, spawn=queued.append, clock=lambda: now[0]), queued


def test_nothing_is_eligible_before_the_first_lease_which_starts_in_the_background() -> None:
    ledger, now = FakeLedger(), [DAY]
    b, queued = budget(ledger, now)
    assert b.spend(10.0, DAY, explore=True) is False
    assert len(queued) == 1 and ledger.calls == 0  # nothing leased on the request path
    assert b.spend(10.0, DAY, explore=True) is False and len(queued) == 1  # one in flight
    queued.pop()()
    assert ledger.leased[utc_day(DAY)] == 50.0 and b.held() == 50.0
    assert b.spend(10.0, DAY, explore=False) is True and b.held() == 50.0  # eligible, kept
    assert b.spend(10.0, DAY, explore=True) is True and b.held() == 40.0


def test_the_worker_never_spends_beyond_what_the_day_granted() -> None:
    ledger, now = FakeLedger(), [DAY]
    b, queued = budget(ledger, now)
    spent = 0.0
    for _ in range(200):
        if b.spend(30.0, DAY, explore=True):
            spent += 30.0
        while queued:
            queued.pop()()
    assert spent == CFG.daily_budget  # 50 + 50 + the last 20, spent 30 at a time
    assert ledger.leased[utc_day(DAY)] == CFG.daily_budget
    assert b.exhausted == utc_day(DAY)
    calls = ledger.calls
    b.spend(30.0, DAY, explore=True)
    assert not queued and ledger.calls == calls  # a spent day is not asked again


def test_yesterdays_lease_is_lost_at_the_utc_day_change() -> None:
    ledger, now = FakeLedger(), [DAY]
    b, queued = budget(ledger, now)
    b.spend(1.0, DAY, explore=False)
    queued.pop()()
    tomorrow = day_start(DAY) + 86_400
    now[0] = tomorrow
    assert b.spend(1.0, tomorrow, explore=True) is False and b.held() == 0.0
    queued.pop()()
    assert ledger.leased[utc_day(tomorrow)] == 50.0


def test_a_failing_ledger_is_retried_after_a_pause() -> None:
    class Down(FakeLedger):
        def lease_exploration(self, day: str, want: float, budget: float) -> float:
            raise OSError("ledger down")

    now = [DAY]
    b, queued = budget(Down(), now)
    b.spend(1.0, DAY, explore=True)
    assert queued.pop()() == 0.0 and b.held() == 0.0
    b.spend(1.0, DAY, explore=True)
    assert not queued  # paused
    now[0] = DAY + 6
    b.spend(1.0, DAY + 6, explore=True)
    assert len(queued) == 1


def test_the_explorer_draws_from_the_request_id_and_spends_the_explored_amount() -> None:
    ledger, now = FakeLedger(), [DAY]
    b, queued = budget(ledger, now)
    ex = Explorer(CFG, "salt", b)
    ex.choose("warm-up", True, 1.0, DAY)
    queued.pop()()
    ids = [f"r{i}" for i in range(40)]
    choices = {rid: ex.choose(rid, True, 1.0, DAY) for rid in ids}
    for rid, c in choices.items():
        assert c.eligible and c.propensity == 0.2
        assert c.explored == (draw("salt", rid) < 0.2)
    explored = sum(c.explored for c in choices.values())
    assert b.spent == explored * 1.0
    assert not ex.choose("r0", False, 1.0, DAY).eligible  # approved by the model
    assert not ex.choose("r0", True, 51.0, DAY).eligible  # above max_amount


def test_no_explorer_while_off() -> None:
    assert explorer(ExplorationConfig(), "salt", FakeLedger()) is None
    assert isinstance(explorer(CFG, "salt", FakeLedger()), Explorer)

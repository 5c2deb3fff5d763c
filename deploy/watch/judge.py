"""The decision: poll the checks for a window; a breach fails, silence passes, blindness is
inconclusive. Plain code: the clock, the sleep and the query are parameters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.watch.prometheus import PrometheusError
from deploy.watch.rules import Check

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
Query = Callable[[str], list[dict[str, Any]]]


@dataclass
class Verdict:
    """What the watch decided and what it saw."""

    outcome: str
    reason: str
    breached: str | None = None
    polls: int = 0
    answered: int = 0
    seconds: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)  # check name -> last series or error


class Judge:
    """Feeds on poll results; knows when a check has held for its hold time."""

    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks
        self.since: list[float | None] = [None] * len(checks)
        self.polls = 0
        self.answered = 0
        self.last: dict[str, Any] = {}

    def poll(self, now: float, query: Query) -> Check | None:
        """Evaluate every check once; the first one breached, if any."""
        self.polls += 1
        ok = True
        breached = None
        for i, check in enumerate(self.checks):
            try:
                series = query(check.expr)
            except PrometheusError as exc:
                ok = False
                self.last[check.name] = f"error: {exc}"
                continue  # unknown: neither starts nor resets the hold
            self.last[check.name] = series
            if not series:
                self.since[i] = None
                continue
            if self.since[i] is None:
                self.since[i] = now
            if breached is None and now - self.since[i] >= check.hold_s:
                breached = check
        self.answered += ok
        return breached


def describe(series: Any) -> str:
    """One line for a check's last result."""
    if isinstance(series, str):
        return series
    if not series:
        return "no series"
    parts = []
    for s in series:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(s["metric"].items()))
        parts.append(f"{{{labels}}} = {s['value'][1]}")
    return "; ".join(parts)


def watch(checks: list[Check], query: Query, minutes: float, interval_s: float,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep,
          log: Callable[[str], None] = print) -> Verdict:
    """Poll every `interval_s` for `minutes`; stop at the first breach."""
    judge = Judge(checks)
    start = clock()
    while True:
        now = clock()
        breached = judge.poll(now, query)
        elapsed = now - start
        log(f"[watch {elapsed:6.1f}s] poll {judge.polls}: "
            + ", ".join(f"{c.name}: {describe(judge.last.get(c.name))}" for c in checks))
        if breached:
            return Verdict(FAIL, f"{breached.name} held for {breached.hold_s:g}s: "
                           f"{describe(judge.last[breached.name])}", breached.name,
                           judge.polls, judge.answered, elapsed, judge.last)
        if elapsed >= minutes * 60:
            break
        sleep(interval_s)
    elapsed = clock() - start
    if judge.answered * 2 < judge.polls:
        return Verdict(INCONCLUSIVE, f"Prometheus answered {judge.answered} of {judge.polls} "
                       "polls: cannot judge the release", None, judge.polls, judge.answered,
                       elapsed, judge.last)
    return Verdict(PASS, f"no breach in {judge.polls} polls over {elapsed:.0f}s", None,
                   judge.polls, judge.answered, elapsed, judge.last)

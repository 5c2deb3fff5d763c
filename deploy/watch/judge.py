"""The decision, counted as Flagger counts a canary analysis: a poll every `interval`; a poll
with a failed check is a failed poll; `threshold` failed polls (not necessarily in a row) fail
the release. Polls without a verdict are never failures: too little traffic is inconclusive,
and so is an unanswered poll (`error_limit` of them in a row stop the watch, as Argo Rollouts'
consecutiveErrorLimit does). At the end of the window the release passes if at least half of
the polls reached a verdict, else the watch is inconclusive. Plain code: the clock, the sleep
and the measurement are parameters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.watch.checks import ERROR, FAIL, INCONCLUSIVE, OK, Outcome, poll_state

PASS = "pass"
Poll = Callable[[], list[Outcome]]


@dataclass
class Verdict:
    """What the watch decided and what it saw."""

    outcome: str
    reason: str
    breached: str | None = None
    polls: int = 0
    counts: dict[str, int] = field(default_factory=dict)   # poll state -> number of polls
    seconds: float = 0.0
    last: list[dict[str, Any]] = field(default_factory=list)  # the last poll's outcomes

    @property
    def answered(self) -> int:
        return self.polls - self.counts.get(ERROR, 0)


def watch(poll: Poll, minutes: float, interval_s: float, threshold: int = 3,
          error_limit: int = 4, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep,
          log: Callable[[str], None] = print) -> Verdict:
    """Poll every `interval_s` for `minutes`; fail at the `threshold`-th failed poll."""
    counts = {OK: 0, FAIL: 0, INCONCLUSIVE: 0, ERROR: 0}
    errors_in_a_row = 0
    failed_checks: dict[str, int] = {}
    start = clock()
    polls = 0
    outcomes: list[Outcome] = []
    while True:
        now = clock()
        outcomes = poll()
        polls += 1
        state = poll_state(outcomes)
        counts[state] += 1
        errors_in_a_row = errors_in_a_row + 1 if state == ERROR else 0
        for o in outcomes:
            if o.state == FAIL:
                failed_checks[o.name] = failed_checks.get(o.name, 0) + 1
        elapsed = now - start
        log(f"[watch {elapsed:6.1f}s] poll {polls}: {state.upper()} "
            f"(failed {counts[FAIL]}/{threshold}); " + "; ".join(o.line() for o in outcomes))
        last = [o.__dict__ for o in outcomes]
        if counts[FAIL] >= threshold:
            worst = max(failed_checks, key=lambda k: failed_checks[k])
            detail = next((o.line() for o in outcomes if o.name == worst), worst)
            return Verdict(FAIL, f"{counts[FAIL]} failed polls (threshold {threshold}); "
                           f"most failed: {detail}", worst, polls, counts, elapsed, last)
        if errors_in_a_row >= error_limit:
            return Verdict(INCONCLUSIVE, f"Prometheus did not answer {errors_in_a_row} polls "
                           "in a row: cannot judge the release", None, polls, counts,
                           elapsed, last)
        if elapsed >= minutes * 60:
            break
        sleep(interval_s)
    elapsed = clock() - start
    last = [o.__dict__ for o in outcomes]
    judged = counts[OK] + counts[FAIL]
    if judged * 2 < polls:
        return Verdict(INCONCLUSIVE, f"only {judged} of {polls} polls reached a verdict "
                       f"({counts[INCONCLUSIVE]} with too little traffic or an environment "
                       f"as bad as the release, {counts[ERROR]} unanswered): cannot judge "
                       "the release", None, polls, counts, elapsed, last)
    return Verdict(PASS, f"{counts[FAIL]} failed polls of {polls} (threshold {threshold}) "
                   f"over {elapsed:.0f}s", None, polls, counts, elapsed, last)

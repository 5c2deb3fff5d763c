"""The experiment watch: what each API worker does every second, off the request path.

One round (`Watch.tick`):
- the ledger: while it refuses writes, one small real write (`Ledger.probe`) finds out when
  it works again; its state and new failed commits go to the metrics every round;
- the shared state: re-read what any worker or replica changed (rollback, share, period);
- every guardrail check interval: one look (mature labels, statistics, guardrails, maybe a
  rollback), its figures to the metrics, the look into the report page's history, and
  retention's few small batches of deletes.

A look reads the experiment's per-user rows, so its cost grows with the users: with hundreds
of thousands it takes a large part of a second, every check interval, in every worker, taken
from the requests. So the next look also waits until the last one's duration is at most
`LOOK_SHARE` (5%) of the time between them: a look of 0.4 s runs every 8 s, not every 2 s. The
always-valid tests stay valid at any look times (fewer looks only spend less of the latency
rule's per-look error rate).

A failing round is logged and the next one retries. Metrics come in through `WatchMetrics`
(fraud.serving.telemetry.Metrics in the service): nothing here knows Prometheus or BentoML.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from fraud.experiment.live import Experiment
from fraud.experiment.looks import look_of, marks_of

log = logging.getLogger("fraudserve")
DAY_S = 86_400
LOOK_SHARE = 0.05  # the most of a worker's time its looks may take (see the docstring)


class WatchMetrics(Protocol):
    """The gauges the watch keeps current."""

    def ledger_state(self, up: bool, new_failures: int) -> None:
        """Whether the ledger takes writes; commits that failed since the last call."""

    def publish(self, report: dict[str, Any]) -> None:
        """The experiment's figures from one look (the /ab-stats body)."""


class Watch:
    """Keeps one worker's view of the experiment current; `run` it in a thread."""

    def __init__(self, experiment: Experiment, metrics: WatchMetrics, *,
                 interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.perf_counter,
                 look_share: float = LOOK_SHARE) -> None:
        self.experiment = experiment
        self.ledger = experiment.ledger
        self.cfg = experiment.cfg
        self.metrics = metrics
        self.interval_s = interval_s
        self.clock = clock  # for the check interval
        self.wall = wall  # for stored looks and the retention horizon
        self.timer = timer  # measures each look's own duration
        self.look_share = look_share
        self.look_s = 0.0  # the last look's duration
        self.last_check = float("-inf")  # the first round checks
        self.failures = 0  # the ledger's failed commits reported so far

    def run(self, stop: threading.Event) -> None:
        """A round every `interval_s` until `stop` is set."""
        while not stop.wait(self.interval_s):
            self.tick(self.clock())

    def tick(self, now: float) -> None:
        """One round at `now` (on `clock`'s scale)."""
        if self.ledger.problem:
            self.ledger.probe()  # refusing traffic: find out when writes work again
        self.metrics.ledger_state(not self.ledger.problem,
                                  self.ledger.write_failures - self.failures)
        self.failures = self.ledger.write_failures
        try:
            self.experiment.refresh()
            if now - self.last_check >= self.check_gap():
                self.last_check = now
                began = self.timer()
                try:
                    report, _ = self.experiment.enforce_guardrails()
                    self.metrics.publish(report)
                    self.save_look(report)
                    self.prune()
                finally:
                    self.look_s = self.timer() - began
        except Exception:  # keep watching; the next round retries
            log.exception("experiment watch failed")

    def check_gap(self) -> float:
        """Seconds from one look to the next: the check interval, or longer when the last
        look took more than `look_share` of it."""
        return max(self.cfg.guardrails.check_interval_s, self.look_s / self.look_share)

    def save_look(self, report: dict[str, Any]) -> bool:
        """The report page's history: this check's look, unless another worker or replica
        stored one within half a check interval (fraud/store/history.py). True if stored."""
        look = look_of(report)
        return self.ledger.save_look(self.experiment.id, look, marks=marks_of(look),
                                     min_gap_s=self.cfg.guardrails.check_interval_s / 2,
                                     max_looks=self.cfg.report.max_looks, now=self.wall())

    def prune(self) -> None:
        """Retention: delete decisions (and the report's looks) past the horizon, a few small
        batches per check."""
        keep = self.cfg.retention
        if keep.decisions_days is not None:
            horizon = self.wall() - keep.decisions_days * DAY_S
            self.ledger.prune(horizon, batch=keep.batch_rows,
                              max_batches=keep.max_batches_per_check)
            self.ledger.prune_looks(horizon)

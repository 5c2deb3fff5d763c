"""The experiment watch: what each API worker does every second, off the request path.

One round (`Watch.tick`):
- the ledger: while it refuses writes, one small real write (`Ledger.probe`) finds out when
  it works again; its state and new failed commits go to the metrics every round;
- the shared state: re-read what any worker or replica changed (rollback, share, period);
- every guardrail check interval: one look (mature labels, statistics, guardrails, maybe a
  rollback), its figures to the metrics, the look into the report page's history, and
  retention's few small batches of deletes.

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
                 wall: Callable[[], float] = time.time) -> None:
        self.experiment = experiment
        self.ledger = experiment.ledger
        self.cfg = experiment.cfg
        self.metrics = metrics
        self.interval_s = interval_s
        self.clock = clock  # for the check interval
        self.wall = wall  # for stored looks and the retention horizon
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
            if now - self.last_check >= self.cfg.guardrails.check_interval_s:
                self.last_check = now
                report, _ = self.experiment.enforce_guardrails()
                self.metrics.publish(report)
                self.save_look(report)
                self.prune()
        except Exception:  # keep watching; the next round retries
            log.exception("experiment watch failed")

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

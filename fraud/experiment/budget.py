"""The exploration budget one worker may spend: leases from the day's budget in the ledger.

`exploration.daily_budget` is the most money exploration may expose in a UTC day, across
every worker and replica. The ledger holds the day's row (budget, leased so far); a worker
leases a small chunk at a time with one atomic conditional UPDATE that never takes the day's
leases beyond its budget (fraud/store/exploration.py), and explores only within what it holds.
A lease left unused at the end of the day (or of the process) is lost, which errs on the safe
side: the money explored in a day is at most the money leased, at most the budget.

Leasing is off the request path: a request only checks and spends the worker's lease (under a
lock, no I/O); when the lease runs low a background thread asks the ledger for the next chunk.
Until it arrives, would-be declines are not eligible (propensity 0), which keeps the stored
propensities true.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from fraud.config.ab import ExplorationConfig
from fraud.experiment.exploration import NOT_ELIGIBLE, Choice, candidate, choose, draw

log = logging.getLogger("fraudserve.exploration")
RETRY_S = 5.0  # after a failed lease


class Leaser(Protocol):
    """The ledger's side (fraud.store.writer.Ledger)."""

    def lease_exploration(self, day: str, want: float, budget: float) -> float:
        """Lease up to `want` from `day`'s budget; the amount granted (0 when spent)."""


def utc_day(ts: float) -> str:
    """The UTC calendar day of an epoch time, e.g. 2025-01-31."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def day_start(ts: float) -> float:
    """The epoch time at which `ts`'s UTC day began."""
    return math.floor(ts / 86_400) * 86_400.0


def _thread(target: Callable[[], None]) -> None:
    threading.Thread(target=target, name="exploration-lease", daemon=True).start()


class Budget:
    """One worker's lease of today's exploration budget."""

    def __init__(self, cfg: ExplorationConfig, leaser: Leaser, *,
                 spawn: Callable[[Callable[[], None]], None] = _thread,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg, self.leaser, self.spawn, self.clock = cfg, leaser, spawn, clock
        self.size = cfg.lease_size()
        self.day = ""
        self.left = 0.0  # leased today and not yet spent
        self.spent = 0.0  # spent today by this worker
        self.leases = 0  # leases granted to this worker (all days)
        self.exhausted = ""  # the day the ledger said its budget was all leased
        self.retry_at = 0.0  # after a failed lease, not before this time
        self._lock = threading.Lock()
        self._refilling = False

    def _roll(self, now: float) -> None:
        day = utc_day(now)
        if day != self.day:  # yesterday's unused lease is lost
            self.day, self.left, self.spent = day, 0.0, 0.0

    def spend(self, amount: float, now: float, explore: bool) -> bool:
        """Whether this worker's lease covers `amount` (the decision is eligible); if so and
        `explore`, the amount is spent. A low lease starts a refill in the background."""
        with self._lock:
            self._roll(now)
            covers = self.left >= amount
            if covers and explore:
                self.left -= amount
                self.spent += amount
            want = ((not covers or self.left < self.size / 2) and not self._refilling
                    and self.exhausted != self.day and now >= self.retry_at)
            if want:
                self._refilling = True
        if want:
            self.spawn(self.refill)
        return covers

    def refill(self) -> float:
        """Lease the next chunk of today's budget from the ledger; the amount granted."""
        try:
            now = self.clock()
            with self._lock:
                self._roll(now)
                day = self.day
            granted = self.leaser.lease_exploration(day, self.size, self.cfg.daily_budget)
            with self._lock:
                if self.day == day and granted > 0:
                    self.left += granted
                    self.leases += 1
                elif granted <= 0:  # all leased today: ask again tomorrow
                    self.exhausted = day
            return granted
        except Exception:  # retried after a pause; meanwhile nothing is eligible
            log.exception("exploration: leasing budget from the ledger failed")
            self.retry_at = self.clock() + RETRY_S
            return 0.0
        finally:
            with self._lock:
                self._refilling = False

    def held(self) -> float:
        """What this worker holds of today's lease, unspent."""
        with self._lock:
            self._roll(self.clock())
            return self.left


class Explorer:
    """Exploration for one worker: the deterministic draw, eligibility, and the lease."""

    def __init__(self, cfg: ExplorationConfig, salt: str, budget: Budget) -> None:
        self.cfg, self.salt, self.budget = cfg, salt, budget

    def choose(self, request_id: str, flagged: bool, amount: float | None,
               now: float) -> Choice:
        """What exploration does with this decision (the lease spent if explored)."""
        if not candidate(self.cfg, flagged, amount):
            return NOT_ELIGIBLE
        assert amount is not None
        u = draw(self.salt, request_id)
        covers = self.budget.spend(amount, now, explore=u < self.cfg.rate)
        return choose(self.cfg, u, flagged, amount, covers)


def explorer(cfg: ExplorationConfig, salt: str, leaser: Leaser) -> Explorer | None:
    """The worker's Explorer, or None while exploration is off."""
    return Explorer(cfg, salt, Budget(cfg, leaser)) if cfg.on else None

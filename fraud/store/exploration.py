"""The ledger's exploration side: the day's budget every worker and replica leases from, and
the explored decisions (fraud/experiment/budget.py, fraud/experiment/exploration.py).

A mixin of `fraud.store.writer.Ledger`. The day's row (`exploration_budget`: budget, leased so
far) changes only by one conditional UPDATE inside a write transaction: the lease is granted
only if the day's leases stay within the budget, so no interleaving of workers can lease more
than the budget, whatever the backend.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fraud.store import sql
from fraud.store.backend import Backend


def grant(want: float, budget: float, leased: float) -> float:
    """min(want, budget - leased), never taking `leased + grant` above the budget in floating
    point (the database adds the same doubles)."""
    g = min(want, budget - leased)
    while g > 0 and leased + g > budget:
        g = math.nextafter(g, 0.0)
    return max(g, 0.0)


class ExplorationStore:
    """Exploration budget leases and explored decisions; needs the host's backend."""

    backend: Backend

    def flush(self) -> None:  # provided by Ledger
        raise NotImplementedError

    def lease_exploration(self, day: str, want: float, budget: float) -> float:
        """Lease up to `want` of `day`'s `budget`: the amount granted (0 once it is all
        leased). One write transaction; the UPDATE's condition keeps the day within budget."""
        now = time.time()
        with self.backend.write(durable=False) as conn:
            conn.execute(sql.BUDGET_OPEN, (day, budget, now))
            leased = float(conn.execute(sql.BUDGET_LEASED, (day,)).fetchone()[0])
            g = grant(want, budget, leased)
            if g <= 0:
                return 0.0
            done = conn.execute(sql.BUDGET_LEASE, (g, budget, now, day, g, budget)).rowcount
        return g if done == 1 else 0.0

    def exploration_today(self, day: str, since: float) -> dict[str, Any]:
        """`day`'s budget row (leased, leases; None before any lease) and the decisions
        explored since `since` (every experiment: the budget is per day)."""
        self.flush()
        with self.backend.read() as conn:
            row = conn.execute(sql.BUDGET_TODAY, (day,)).fetchone()
            n, amount = conn.execute(sql.EXPLORED_SINCE, (since,)).fetchone()
        return {"day": day, "explored": int(n or 0), "explored_amount": float(amount or 0.0),
                "leased": None if row is None else float(row[0]),
                "leases": 0 if row is None else int(row[1])}

    def explored_totals(self, experiment_id: int) -> dict[str, dict[str, Any]]:
        """Per deciding arm: explored decisions, their amount, and the labelled ones and
        frauds among them with the frauds' amount (what exploration let through)."""
        with self.backend.read() as conn:
            rows = conn.execute(sql.EXPLORED_TOTALS, (experiment_id,)).fetchall()
        return {str(arm): {"explored": int(n), "explored_amount": float(amount or 0.0),
                           "labelled": int(labelled or 0), "frauds": int(frauds or 0),
                           "fraud_amount": float(fraud_amount or 0.0)}
                for arm, n, amount, labelled, frauds, fraud_amount in rows}

    def explored(self, experiment_id: int, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` explored decisions of the experiment, newest first."""
        self.flush()
        with self.backend.read() as conn:
            rows = conn.execute(sql.EXPLORED, (experiment_id, limit)).fetchall()
        return [{"request_id": rid, "ts": ts, "user_id": user, "decided_by": arm,
                 "fraud_probability": p, "model_is_fraud": True, "is_fraud": False,
                 "amount": amount, "propensity": propensity,
                 "label": None if label is None else bool(label), "label_source": source}
                for rid, ts, user, arm, p, amount, propensity, label, source in rows]

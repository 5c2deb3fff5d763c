"""The ledger's history side: the looks the report page draws over time.

A mixin of `fraud.store.writer.Ledger` (which owns the store's backend). A look is a compact JSON
summary of one guardrail check's /ab-stats body (fraud/report/history.py `look_of`), stored
once per experiment per half check interval, however many workers and replicas check:
`save_look` inserts only if the experiment's newest look is older than `min_gap_s`, in one
statement inside the store's serialised write transaction (SQLite's write lock, PostgreSQL's
advisory lock), so two workers cannot both pass the check. A duplicate can still happen when
replicas' clocks disagree by more than the gap (each judges "older" by its own clock); it is
harmless: one more point on a chart.

Bounded: past `max_looks` the oldest half is thinned (every second look goes, except a look
whose `marks` differ from the one before it: rollbacks, resumes and verdict changes stay), and
if marks changed so often that thinning is not enough, the oldest beyond `max_looks` go.
`prune_looks` deletes looks past the retention horizon.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from fraud.store import sql
from fraud.store.backend import Backend


class HistoryStore:
    """Looks per experiment; needs the host's backend."""

    backend: Backend

    def save_look(self, experiment_id: int, look: dict[str, Any], *, marks: str,
                  min_gap_s: float, max_looks: int, now: float | None = None) -> bool:
        """Store `look` (JSON-ready) unless the experiment has a look newer than
        `min_gap_s` seconds; thin its looks past `max_looks`. True if it was stored."""
        if max_looks < 2 or min_gap_s < 0:
            raise ValueError("max_looks must be >= 2 and min_gap_s >= 0")
        ts = time.time() if now is None else float(now)
        body = json.dumps(look, separators=(",", ":"), sort_keys=True, allow_nan=False)
        with self.backend.write(durable=False) as conn:
            stored = conn.execute(sql.INSERT_LOOK, (experiment_id, ts, marks, body,
                                                    experiment_id, ts - min_gap_s)).rowcount
            if stored != 1:
                return False
            n = int(conn.execute(sql.COUNT_LOOKS, (experiment_id,)).fetchone()[0])
            if n > max_looks:
                conn.execute(sql.THIN_LOOKS, (experiment_id, math.ceil(n / 2)))
                conn.execute(sql.TRIM_LOOKS, (experiment_id, max_looks))
        return True

    def looks(self, experiment_id: int) -> list[dict[str, Any]]:
        """The experiment's looks, oldest first, each with its `ts` (epoch seconds)."""
        with self.backend.read() as conn:
            rows = conn.execute(sql.SELECT_LOOKS, (experiment_id,)).fetchall()
        return [{**json.loads(body), "ts": float(ts)} for ts, body in rows]

    def prune_looks(self, before_ts: float) -> int:
        """Delete every experiment's looks older than `before_ts`; how many went."""
        with self.backend.write(durable=False) as conn:
            return conn.execute(sql.PRUNE_LOOKS, (before_ts,)).rowcount

"""The ledger's shadow side: per-user sums over transactions both models scored, the latest
disagreements, and both models' scores for comparing them at one operating point.

A mixin of `fraud.store.writer.Ledger`. A shadow decision stores the deciding arm's score and
decision and, beside them, the other model's (`shadow_probability`, `shadow_is_fraud`); the
queries here turn each row into (model_a's, model_b's) whatever the arm was. They read the
decisions of one experiment (cost grows with its paired decisions; the service calls them once
per look, not per request).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fraud.stats.aggregates import PairedUsers
from fraud.store.backend import Backend

# One row per paired decision: both models' decisions (fa, fb), scores (pa, pb), maturity m,
# fraud label y (unlabelled = 0) and amount.
_PAIRED = """
WITH p AS (
  SELECT d.id AS id, d.user_id AS u, d.matured AS m, COALESCE(d.amount, 0) AS amt,
         CASE WHEN d.arm = 'model_a' THEN d.is_fraud ELSE d.shadow_is_fraud END AS fa,
         CASE WHEN d.arm = 'model_b' THEN d.is_fraud ELSE d.shadow_is_fraud END AS fb,
         CASE WHEN d.arm = 'model_a' THEN d.probability ELSE d.shadow_probability END AS pa,
         CASE WHEN d.arm = 'model_b' THEN d.probability ELSE d.shadow_probability END AS pb,
         COALESCE(l.is_fraud, 0) AS y
  FROM decisions d LEFT JOIN labels l ON l.request_id = d.request_id
  WHERE d.experiment_id = ? AND d.shadow_is_fraud IS NOT NULL)
"""
# Per user, in PairedUsers field order.
PAIRED_USERS = _PAIRED + """
SELECT u, COUNT(*), SUM(CAST(fa <> fb AS INTEGER)), SUM(fa), SUM(fb), SUM(m), SUM(y),
       SUM(y * fa), SUM(y * fb), SUM(y * fa * fb), SUM(m * (1 - y) * fa), SUM(m * (1 - y) * fb),
       SUM(y * amt), SUM(y * fa * amt), SUM(y * fb * amt), SUM(m * (1 - y) * fa * amt),
       SUM(m * (1 - y) * fb * amt), SUM(m * amt)
FROM p GROUP BY u
"""
PAIRED_SCORES = _PAIRED + "SELECT pa, pb, fa, m, y FROM p ORDER BY id DESC LIMIT ?"
DISAGREEMENTS = """
SELECT d.request_id, d.ts, d.user_id, d.arm, d.probability, d.is_fraud, d.shadow_probability,
       d.shadow_is_fraud, d.amount, l.is_fraud
FROM decisions d LEFT JOIN labels l ON l.request_id = d.request_id
WHERE d.experiment_id = ? AND d.shadow_is_fraud IS NOT NULL AND d.shadow_is_fraud <> d.is_fraud
ORDER BY d.id DESC LIMIT ?
"""

class PairedStore:
    """Shadow-mode reads; needs the host's backend and `flush`."""

    backend: Backend

    def flush(self) -> None:  # provided by Ledger
        raise NotImplementedError

    def paired_users(self, experiment_id: int) -> PairedUsers:
        self.flush()
        with self.backend.read() as conn:
            return PairedUsers.from_rows(conn.execute(PAIRED_USERS, (experiment_id,)).fetchall())

    def paired_scores(self, experiment_id: int, limit: int) -> np.ndarray:
        """The latest `limit` paired decisions: columns pa, pb, fa, mature, fraud."""
        with self.backend.read() as conn:
            rows = conn.execute(PAIRED_SCORES, (experiment_id, limit)).fetchall()
        return np.array(rows, dtype=np.float64).reshape(len(rows), 5)

    def disagreements(self, experiment_id: int, limit: int) -> list[dict[str, Any]]:
        """The latest decisions the two models decided differently, newest first."""
        with self.backend.read() as conn:
            rows = conn.execute(DISAGREEMENTS, (experiment_id, limit)).fetchall()
        out = []
        for rid, ts, user, arm, p, flagged, sp, sflagged, amount, label in rows:
            other = "model_b" if arm == "model_a" else "model_a"
            out.append({"request_id": rid, "ts": ts, "user_id": user, "decided_by": arm,
                        "amount": amount, "label": None if label is None else bool(label),
                        arm: {"fraud_probability": p, "is_fraud": bool(flagged)},
                        other: {"fraud_probability": sp, "is_fraud": bool(sflagged)}})
        return out

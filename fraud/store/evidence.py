"""The ledger's reads for a look beyond the running sums: the label rows per deciding arm
(fraud/stats/labels.py's `LabelUsers`), the per-user period rows (fraud/stats/periods.py's
`UserPeriods`) and the labels by source.

A mixin of `fraud.store.writer.Ledger`. Each is one grouped query per look over one
experiment's decisions or per-user rows (like fraud/store/paired.py), never per request.
"""

from __future__ import annotations

from fraud.stats.labels import LabelUsers
from fraud.stats.periods import UserPeriods
from fraud.store import sql
from fraud.store.backend import Backend


class EvidenceStore:
    """Label rows, period rows and label sources; needs the host's backend and `flush`."""

    backend: Backend

    def flush(self) -> None:  # provided by Ledger
        raise NotImplementedError

    def label_users(self, experiment_id: int, before: float) -> dict[str, LabelUsers]:
        """Per deciding arm, the LabelUsers rows over the experiment's decisions older than
        `before` (the mature ones); an arm that decided none is absent."""
        self.flush()
        with self.backend.read() as conn:
            rows = conn.execute(sql.LABEL_USERS, (experiment_id, before)).fetchall()
        by_arm: dict[str, list[tuple[object, ...]]] = {}
        for arm, *rest in rows:
            by_arm.setdefault(str(arm), []).append(tuple(rest))
        return {arm: LabelUsers.from_rows(part) for arm, part in by_arm.items()}

    def user_periods(self, experiment_id: int) -> UserPeriods:
        """The experiment's per-user rows: one per (period, arm, user)."""
        self.flush()
        with self.backend.read() as conn:
            return UserPeriods.from_rows(
                conn.execute(sql.USER_PERIODS, (experiment_id,)).fetchall())

    def label_sources(self, experiment_id: int) -> dict[str, dict[str, int]]:
        """Labels of the experiment's decisions per deciding arm and source ("unspecified"
        when the label came without one)."""
        with self.backend.read() as conn:
            rows = conn.execute(sql.LABEL_SOURCES, (experiment_id,)).fetchall()
        out: dict[str, dict[str, int]] = {}
        for arm, source, n in rows:
            out.setdefault(str(arm), {})[source or "unspecified"] = int(n)
        return out

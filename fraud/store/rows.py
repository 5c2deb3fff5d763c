"""Decisions as ledger rows, and how one group commit writes them with their aggregates.

Prepared outside the write lock (`prepare`: rows flattened, per-user sums of decisions and
errors computed), written inside it (`write`) in two statements: the decisions in one
multi-row insert marked `counted` (the per-row `decisions_count` trigger skips them), then
their users' sums in one grouped upsert (one row per user, in one sorted order). A ledger
writer of an earlier release inserts unmarked rows and its trigger counts them, so both can
share a store. Exactness is kept: a request_id already stored (fewer rows inserted than sent)
rolls the fast path back and lets the trigger count the new rows only; a row the store refuses
for its content fails its own request alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fraud.schema import ARMS
from fraud.store import sql
from fraud.store.backend import Backend, Conn
from fraud.store.records import SOURCES, Decision, LedgerBusy, ScoringError

log = logging.getLogger("fraud.store.writer")

Row = tuple[Any, ...]  # in sql.DECISION_COLUMNS order


def to_row(d: Decision) -> Row:
    """A decision as an INSERT_DECISION row; refuses an unknown arm or source."""
    if d.arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {d.arm!r}")
    if d.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {d.source!r}")
    return (
        str(d.request_id), float(d.ts), str(d.user_id), d.arm, str(d.model_tag),
        float(d.probability), 1 if d.is_fraud else 0, float(d.latency_ms), d.source,
        int(d.experiment_id), int(d.period),
        None if d.amount is None else float(d.amount),
        None if d.shadow_probability is None else float(d.shadow_probability),
        None if d.shadow_is_fraud is None else int(bool(d.shadow_is_fraud)),
        1 if d.explored else 0, None if d.propensity is None else float(d.propensity),
    )


def user_counts(rows: list[Row]) -> list[tuple[Any, ...]]:
    """(experiment, period, arm, user, decisions, flagged) per user in `rows`, sorted (one
    lock order for the upserts)."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:  # DECISION_COLUMNS order: user 2, arm 3, is_fraud 6, experiment 9, period 10
        c = counts.setdefault((r[9], r[10], r[3], r[2]), [0, 0])
        c[0] += 1
        c[1] += r[6]
    return sorted((*key, n, flagged) for key, (n, flagged) in counts.items())


@dataclass
class Batch:
    """One group commit, ready to write: its requests' rows, per-user sums and error counts."""

    groups: list[list[Row]]
    rows: list[Row]  # every group's, marked counted
    users: list[tuple[Any, ...]]  # (experiment, period, arm, user, decisions, flagged, errors,
    #                                undecided)
    errors: list[tuple[Any, ...]]  # the same for users with errors, decisions left out
    lock_arms: bool = False  # PostgreSQL's shared commits: lock the per-arm rows first

    def arms(self, conn: Conn) -> None:
        """Lock the per-arm rows the users' triggers will update (see sql.LOCK_ARMS)."""
        keys = sorted({u[:3] for u in self.users})
        if self.lock_arms and keys:
            conn.execute(sql.LOCK_ARMS.format(keys=", ".join(["(?, ?, ?)"] * len(keys))),
                         [v for key in keys for v in key])


def prepare(groups: list[list[Row]], errors: list[ScoringError]) -> Batch:
    """Everything a commit needs that is not SQL (done before taking the write lock). Users
    are sorted: every commit takes their rows in one order (fraud/store/postgres.py)."""
    rows = [(*row, 1) for group in groups for row in group]
    sums: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:  # DECISION_COLUMNS order: user 2, arm 3, is_fraud 6, experiment 9, period 10
        c = sums.setdefault((r[9], r[10], r[3], r[2]), [0, 0, 0, 0])
        c[0] += 1
        c[1] += r[6]
    for e in errors:  # a failed row counts as an error; one left undecided by it as attempted
        key = (e.experiment_id, e.period, e.arm, e.user_id)
        sums.setdefault(key, [0, 0, 0, 0])[3 if e.undecided else 2] += 1
    users = sorted((*key, *c) for key, c in sums.items())
    return Batch(groups, rows, users, [(*u[:4], 0, 0, *u[6:]) for u in users if u[6] or u[7]])


def commit(backend: Backend, groups: list[list[Row]],
           errors: list[ScoringError]) -> dict[int, BaseException]:
    """One group commit: prepared, then written in one transaction (shared: PostgreSQL runs
    other processes' commits beside it, and if it aborts it to break a deadlock, it runs again).
    Returns the groups the store refused for their content, which were not written."""
    batch = prepare(groups, errors)
    batch.lock_arms = bool(getattr(backend, "retry", ()))  # PostgreSQL: commits side by side
    retry = getattr(backend, "retry", ())
    for attempt in range(1, 6):
        try:
            with backend.write(durable=False, shared=True) as conn:
                return write(conn, batch, backend.bad_row)
        except retry as exc:
            if attempt == 5:  # contention, not a fault: this batch fails, the ledger is up
                raise LedgerBusy(f"a commit to {backend.where} was rolled back {attempt} times "
                                 f"to break deadlocks ({exc}); it was not written") from exc
            log.info("ledger: a commit to %s was rolled back (%s): again", backend.where,
                     type(exc).__name__)
    raise AssertionError("unreachable")


def write(conn: Conn, batch: Batch,
          bad_row: tuple[type[BaseException], ...]) -> dict[int, BaseException]:
    """Insert the batch's decisions (duplicate request_ids ignored) with their aggregates, and
    its error counts. Returns the groups (requests) the store refused for their content, which
    were not written; any other failure raises and fails the transaction."""
    rejected: dict[int, BaseException] = {}
    if batch.rows:
        counted, rejected = _decisions(conn, batch, bad_row)
        if counted:  # the users' decisions and errors are in
            return {}
    batch.arms(conn)
    conn.insert_many(sql.USER_COUNTS[0], batch.errors, sql.USER_COUNTS[1])
    return rejected


def _decisions(conn: Conn, batch: Batch, bad_row: tuple[type[BaseException], ...]
               ) -> tuple[bool, dict[int, BaseException]]:
    """The decisions: (True, {}) if the fast path counted them with the users' sums, else
    (False, the refused groups) once the trigger counted the ones stored."""
    refused = (*bad_row, ValueError, UnicodeError)
    conn.execute("SAVEPOINT batch")
    try:
        if conn.insert_many(sql.COUNTED_HEAD, batch.rows, sql.IGNORE_DUPLICATES) == len(batch.rows):
            batch.arms(conn)
            conn.insert_many(sql.USER_COUNTS[0], batch.users, sql.USER_COUNTS[1])
            conn.execute("RELEASE SAVEPOINT batch")
            return True, {}
        # Some request_id was already stored (a retried write): the trigger counts new rows.
        conn.execute("ROLLBACK TO SAVEPOINT batch")
        batch.arms(conn)
        conn.insert_many(sql.DECISIONS_HEAD, [r[:-1] for r in batch.rows], sql.IGNORE_DUPLICATES)
        conn.execute("RELEASE SAVEPOINT batch")
        return False, {}
    except refused as exc:
        log.warning("ledger: a batch of %d requests failed (%s); writing them one by one",
                    len(batch.groups), exc)
        conn.execute("ROLLBACK TO SAVEPOINT batch")
        conn.execute("RELEASE SAVEPOINT batch")
    batch.arms(conn)
    rejected: dict[int, BaseException] = {}
    for i, group in enumerate(batch.groups):
        conn.execute("SAVEPOINT one")
        try:
            conn.executemany(sql.INSERT_DECISION, group)
        except refused as exc:
            conn.execute("ROLLBACK TO SAVEPOINT one")
            rejected[i] = exc
            log.error("ledger: refusing a request's decisions %r: %s",
                      [r[0] for r in group][:5], exc)
        conn.execute("RELEASE SAVEPOINT one")
    return False, rejected

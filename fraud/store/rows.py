"""Decisions as ledger rows, and how one group commit writes them with their aggregates.

Prepared outside the write lock (`prepare`: rows flattened, per-user sums and error counts
computed), written inside it (`write`) in few statements: the decisions in one multi-row insert
marked `counted` (the per-row `decisions_count` trigger skips them), then their users'
aggregates in one grouped upsert (a sum per user), then the error counts likewise. A ledger
writer of an earlier release inserts unmarked rows and its trigger counts them, so both can
share a store. Exactness is kept: a request_id already stored (fewer rows inserted than sent)
rolls the fast path back and lets the trigger count the new rows only; a row the store refuses
for its content fails its own request alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fraud.schema import ARMS
from fraud.store import sql
from fraud.store.backend import Conn
from fraud.store.records import SOURCES, Decision, ScoringError

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
    users: list[tuple[Any, ...]]  # user_counts(rows)
    errors: list[tuple[Any, ...]]  # (experiment, period, arm, user, n)


def prepare(groups: list[list[Row]], errors: list[ScoringError]) -> Batch:
    """Everything a commit needs that is not SQL (done before taking the write lock)."""
    rows = [(*row, 1) for group in groups for row in group]
    counted = Counter((e.experiment_id, e.period, e.arm, e.user_id) for e in errors)
    return Batch(groups, rows, user_counts(rows) if rows else [],
                 sorted((*key, n) for key, n in counted.items()))


def write(conn: Conn, batch: Batch,
          bad_row: tuple[type[BaseException], ...]) -> dict[int, BaseException]:
    """Insert the batch's decisions (duplicate request_ids ignored) with their aggregates, and
    its error counts. Returns the groups (requests) the store refused for their content, which
    were not written; any other failure raises and fails the transaction."""
    rejected = _decisions(conn, batch, bad_row) if batch.rows else {}
    conn.insert_many(sql.USER_ERRORS[0], batch.errors, sql.USER_ERRORS[1])
    return rejected


def _decisions(conn: Conn, batch: Batch,
               bad_row: tuple[type[BaseException], ...]) -> dict[int, BaseException]:
    refused = (*bad_row, ValueError, UnicodeError)
    conn.execute("SAVEPOINT batch")
    try:
        if conn.insert_many(sql.COUNTED_HEAD, batch.rows, sql.IGNORE_DUPLICATES) == len(batch.rows):
            conn.insert_many(sql.USER_DECISIONS[0], batch.users, sql.USER_DECISIONS[1])
        else:  # some request_id was already stored (a retried write): the trigger counts new rows
            conn.execute("ROLLBACK TO SAVEPOINT batch")
            conn.insert_many(sql.DECISIONS_HEAD, [r[:-1] for r in batch.rows],
                             sql.IGNORE_DUPLICATES)
        conn.execute("RELEASE SAVEPOINT batch")
        return {}
    except refused as exc:
        log.warning("ledger: a batch of %d requests failed (%s); writing them one by one",
                    len(batch.groups), exc)
        conn.execute("ROLLBACK TO SAVEPOINT batch")
        conn.execute("RELEASE SAVEPOINT batch")
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
    return rejected

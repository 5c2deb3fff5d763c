"""The PostgreSQL migrator: pending schema versions applied by one process at a time, each in
its own short transaction, never stalling the ledger's writers for long.

- One migrator at a time: a session advisory lock (`SCHEMA_LOCK`, the key earlier releases'
  workers took around their start-up DDL). A second migrator waits for it (up to `wait` s),
  then finds the work done.
- `lock_timeout`: a step that alters a table first takes that table's ACCESS EXCLUSIVE lock.
  While it waits, every writer queues behind it; so if a long transaction elsewhere holds the
  table, the step gives up after `lock_timeout`, rolls back, and fails naming the table and
  the sessions holding it (rerun when they are gone). Writers waited at most that long.
- `statement_timeout`: no step runs unbounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors

from fraud.store.backend import redact
from fraud.store.dialect import POSTGRES
from fraud.store.migrations import (
    MIGRATIONS,
    Migration,
    MigrationError,
    Outcome,
    apply,
    start,
    todo,
)
from fraud.store.postgres import SCHEMA_LOCK, _Conn

log = logging.getLogger("fraud.store.migrate")

# Sessions other than ours holding a lock on a table of this database (all tables if NULL).
_HOLDERS = """
SELECT a.pid, c.relname, l.mode, COALESCE(a.state, ''),
       EXTRACT(EPOCH FROM now() - COALESCE(a.xact_start, a.query_start)), LEFT(a.query, 80)
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND c.relkind = 'r' AND a.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND c.relnamespace = current_schema()::regnamespace AND (%s::text IS NULL OR c.relname = %s)
ORDER BY a.xact_start
"""


def migrate_postgres(url: str, *, target: int | None = None, lock_timeout: float = 5.0,
                     statement_timeout: float = 300.0, wait: float = 600.0,
                     migrations: Sequence[Migration] = MIGRATIONS) -> Outcome:
    """Apply the pending migrations (see the module docstring); what was done."""
    where = redact(url)
    outcome = Outcome(where, 0, 0)
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True, connect_timeout=10,
                         application_name="fraudserve-migrate") as conn:
        outcome.waited = _lock(conn, where, wait)
        try:
            _timeouts(conn, lock_timeout, statement_timeout)
            c = _Conn(conn)
            with conn.transaction():
                version = start(c, POSTGRES, outcome)
            for m in todo(migrations, version, target):
                _step(conn, c, m, outcome, lock_timeout, statement_timeout)
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    return outcome


def _lock(conn: psycopg.Connection[Any], where: str, wait: float) -> float:
    """Take the migration lock, waiting up to `wait` s; how long it took."""
    began = time.monotonic()
    if conn.execute("SELECT pg_try_advisory_lock(%s)", (SCHEMA_LOCK,)).fetchone()[0]:
        return 0.0
    log.info("ledger %s: another migrator holds the migration lock; waiting up to %gs",
             where, wait)
    conn.execute(f"SET lock_timeout = {int(wait * 1000)}")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
    except errors.LockNotAvailable as exc:
        raise MigrationError(f"ledger {where}: another migrator held the migration lock for "
                             f"more than {wait:g}s") from exc
    return time.monotonic() - began


def _timeouts(conn: psycopg.Connection[Any], lock_timeout: float,
              statement_timeout: float) -> None:
    conn.execute(f"SET lock_timeout = {max(1, int(lock_timeout * 1000))}")
    conn.execute(f"SET statement_timeout = {max(1, int(statement_timeout * 1000))}")


def _step(conn: psycopg.Connection[Any], c: _Conn, m: Migration, outcome: Outcome,
          lock_timeout: float, statement_timeout: float) -> None:
    """One migration in one transaction: its tables' locks first, then its DDL."""
    table: str | None = None
    try:
        with conn.transaction():
            for table in m.locks:
                if POSTGRES.has_table(c, table):
                    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            table = None
            apply(c, POSTGRES, m, outcome)
    except errors.LockNotAvailable as exc:
        what = f"table {table}" if table else "a lock it needs"
        raise MigrationError(
            f"ledger {outcome.where}: migration {m.version} ({m.name}) could not take "
            f"{what} within lock_timeout={lock_timeout:g}s: {_holders(conn, table)}. Nothing "
            "of it was applied and writers waited at most the lock_timeout; run the migrator "
            "again once that transaction has ended") from exc
    except errors.QueryCanceled as exc:
        raise MigrationError(
            f"ledger {outcome.where}: migration {m.version} ({m.name}) ran longer than "
            f"statement_timeout={statement_timeout:g}s and was rolled back") from exc


def _holders(conn: psycopg.Connection[Any], table: str | None) -> str:
    """Who holds locks on `table` (or any table): pid, lock, state, age and query."""
    rows = conn.execute(_HOLDERS, (table, table)).fetchall()
    if not rows:
        return "held by a session that has since let go"
    return "held by " + "; ".join(
        f"pid {pid} ({mode} on {rel}, {state or 'state unknown'} for {float(age or 0):.1f}s: "
        f"{query!r})" for pid, rel, mode, state, age, query in rows[:5])

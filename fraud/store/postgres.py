"""The shared store: PostgreSQL, for more than one replica.

Driver: psycopg 3 with psycopg_pool. psycopg 3 is the maintained successor of psycopg2 (binary
wheels, so nothing to compile; server-side binding; `executemany` pipelined in one round
trip, which is what a group commit of many rows needs). The pool gives each worker process a
few connections that the writer thread and the request threads share, checks a connection
before handing it out (so the ledger reconnects on its own after the server restarts) and
bounds the wait for one (so a stopped server is an error in seconds, not a hang).

Every write transaction first takes one transaction-scoped advisory lock. Decision commits
(the writer's group commits: decisions and their per-user counts) take it shared, so the
writers of several processes and replicas commit side by side; every other write (labels,
maturity, experiments and their compare-and-set, looks, retention) takes it exclusive, so it
runs alone, as on SQLite. Side by side, two commits meet only on the aggregate rows: each
inserts its decisions (in parallel), then locks the per-arm rows its users' triggers update,
in one sorted order (sql.LOCK_ARMS), then its users' rows, sorted (one grouped upsert); so
they queue there rather than deadlock. A commit PostgreSQL still aborts to break a deadlock
(duplicate request ids from a resent request, counted by the per-row trigger in row order)
is rolled back whole and run again (`retry`). Measured with tests/unit/store/ledger_writers.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from fraud.store.backend import redact
from fraud.store.dialect import POSTGRES
from fraud.store.records import LedgerBusy
from fraud.store.version import check

log = logging.getLogger(__name__)

WRITE_LOCK = 0x6672_6175_6400  # pg_advisory_xact_lock key of every ledger write ("fraud")
SCHEMA_LOCK = WRITE_LOCK + 1  # the migrator's (earlier releases' workers took it too)
# The write lock, its waits (and the transaction's) bounded by the ledger's lock_wait.
_LOCK = ("SELECT pg_advisory_xact_lock(%s) FROM (SELECT set_config('lock_timeout', %s, true))"
         " AS timeout")
_LOCK_SHARED = _LOCK.replace("pg_advisory_xact_lock(", "pg_advisory_xact_lock_shared(")
_KEPT: list[Any] = []  # pools disowned after fork: never closed by the child (see after_fork)


def _pg(statement: str) -> str:
    if "%" in statement:
        raise ValueError("ledger SQL must not contain '%' (psycopg placeholders)")
    return statement.replace("?", "%s")


class _Conn:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, statement: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(_pg(statement), params, prepare=False)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> int:
        with self.conn.cursor() as cur:
            cur.executemany(_pg(statement), rows)
            return cur.rowcount

    def insert_many(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> int:
        """executemany, which psycopg sends in pipeline mode: every row in one round trip, the
        statement parsed once (measured: as fast as one INSERT ... SELECT FROM unnest(...),
        and ~2x a multi-row VALUES statement, which the server parses whole each time)."""
        if not rows:
            return 0
        return self.executemany(f"{head} VALUES ({', '.join('?' * len(rows[0]))}){tail}", rows)


class PostgresBackend:
    """A PostgreSQL database named by a `postgresql://` URL, its schema migrated beforehand
    (fraud/store/migrate.py): opening checks the version and refuses one it cannot run on."""

    errors = (psycopg.Error, psycopg_pool.PoolTimeout)
    bad_row = (psycopg.DataError, psycopg.IntegrityError)
    retry = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

    def __init__(self, url: str, *, timeout: float = 5.0, lock_wait: float = 20.0,
                 max_size: int = 4) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.where = redact(self.url)
        self.timeout = timeout
        self.lock_wait = lock_wait
        self.forked = False
        self.pool = psycopg_pool.ConnectionPool(
            self.url, min_size=1, max_size=max_size, timeout=timeout, open=False,
            check=psycopg_pool.ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            name="fraudserve-ledger",
        )
        self.pool.open(wait=False)
        try:  # a read only: workers never change the schema (python -m fraud.store.migrate)
            with self.read() as conn:
                self.schema_version = check(conn, POSTGRES, self.where)
        except BaseException:
            self.pool.close()
            raise

    @contextmanager
    def write(self, *, durable: bool = True, shared: bool = False) -> Iterator[_Conn]:
        """One transaction, after every other ledger write (the advisory lock; `shared`: only
        after the writes that are not shared, see the module docstring). Always committed
        with the server's synchronous_commit (`durable` is for SQLite's cheaper level, which
        survives a crash of any process; PostgreSQL's cheaper level would not survive a crash
        of the server). Its lock waits are bounded by `lock_wait` (the transaction's
        lock_timeout): past it, this transaction fails alone (LedgerBusy)."""
        self._check_fork()
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute(_LOCK_SHARED if shared else _LOCK,
                             (WRITE_LOCK, f"{max(1, int(self.lock_wait * 1000))}ms"))
                yield _Conn(conn)
        except psycopg.errors.LockNotAvailable as exc:
            raise LedgerBusy(f"waited more than {self.lock_wait:g}s for a write lock of "
                             f"{self.where}, held by other writers; this transaction was not "
                             "written") from exc

    @contextmanager
    def read(self) -> Iterator[_Conn]:
        self._check_fork()
        with self.pool.connection() as conn:
            yield _Conn(conn)

    def close(self) -> None:
        if not self.forked:
            self.pool.close()

    def after_fork(self) -> None:
        """In a forked child the parent's connections are the parent's: using one would mix
        two processes' messages on one socket, and closing one would end the parent's session.
        Refuse to use them and keep them referenced forever (never closed by the child)."""
        self.forked = True
        _KEPT.append(self.pool)

    def _check_fork(self) -> None:
        if self.forked:
            raise RuntimeError("this ledger was opened before fork(); open a new one in each "
                               "worker process")

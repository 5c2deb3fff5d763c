"""The embedded store: one SQLite file in WAL mode, shared by the processes of one machine.

Each process holds two connections, each behind a lock: writes (BEGIN IMMEDIATE takes the
file's write lock, so writers in every process take turns) and reads (WAL readers never wait
for the writer). A write that finds the lock taken waits for it, `busy_timeout` at a time, up
to `lock_wait` in all: another process's commit is not a fault, so only after that deadline
does that one transaction fail (LedgerBusy), and nothing is declared down.

Schema: unlike a PostgreSQL worker, a SQLite ledger applies the migrations itself when it opens
a file whose schema is older than this release's (`migrate_file`, the same code and lock as
`python -m fraud.store.migrate`). Why here and not in a deploy step: the embedded ledger is one
file on one machine, created on first use, and `make serve`, the tests' serves and the tools
open fresh files with no step before them. The reasons PostgreSQL workers must not run DDL do
not hold for it: the migration is one transaction under BEGIN IMMEDIATE, the write lock every
write takes anyway (no stronger lock, no lock queue: WAL readers never wait, other writers
wait as for any commit, and ADD COLUMN changes no rows); workers starting together take turns
on that lock and the second finds the work done; a file already at this release's version is
only read (no write lock at all); and a newer schema is never touched, only checked for
compatibility as on PostgreSQL. `migrate=False` makes a ledger check only.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fraud.store.dialect import SQLITE
from fraud.store.migrations import (
    LATEST,
    MIGRATIONS,
    Migration,
    MigrationError,
    Outcome,
    apply,
    current,
    start,
    todo,
)
from fraud.store.records import LedgerBusy
from fraud.store.version import check

log = logging.getLogger(__name__)


class _Conn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, statement: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(statement, params)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> int:
        return self.conn.executemany(statement, rows).rowcount

    def insert_many(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> int:
        """One multi-row VALUES statement per chunk of rows within SQLite's variable limit
        (32766: 2184 decisions): one step each, which releases the GIL while SQLite works
        (executemany takes it back between rows, and a busy process then holds the write lock
        for longer)."""
        if not rows:
            return 0
        one = f"({', '.join('?' * len(rows[0]))})"
        per = max(1, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(rows[0]))
        done = 0
        for i in range(0, len(rows), per):
            chunk = rows[i:i + per]
            done += self.conn.execute(f"{head} VALUES {', '.join([one] * len(chunk))}{tail}",
                                      [v for row in chunk for v in row]).rowcount
        return done


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), the file in WAL mode."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    deadline = time.monotonic() + busy_timeout
    while True:  # switching to WAL takes a lock another process may hold briefly
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if str(mode).lower() != "wal":
        raise RuntimeError(f"could not put {path} in WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def migrate_file(path: Path, *, target: int | None = None, wait: float = 60.0,
                 migrations: Sequence[Migration] = MIGRATIONS) -> Outcome:
    """Apply the pending migrations to a SQLite ledger in one transaction, under its write
    lock (BEGIN IMMEDIATE), waiting up to `wait` s for it: a second migrator waits, then finds
    nothing to do. Creates the file and its directory if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(str(path), 0, 0)
    conn = connect(path, busy_timeout=wait)
    try:
        began = time.monotonic()
        conn.execute("PRAGMA busy_timeout = 0")  # first see whether someone holds the lock
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            log.info("ledger %s: another process holds the write lock; waiting up to %gs",
                     path, wait)
            conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as again:
                if not is_busy(again):
                    raise
                raise MigrationError(
                    f"could not take the write lock of the SQLite ledger {path} within "
                    f"{wait:g}s: another process holds a write transaction that long") from again
        outcome.waited = time.monotonic() - began
        try:
            c = _Conn(conn)
            for m in todo(migrations, start(c, SQLITE, outcome), target):
                apply(c, SQLITE, m, outcome)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return outcome


def is_busy(exc: sqlite3.Error) -> bool:
    """A lock wait (another connection holds the lock), not a fault."""
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SQLiteBackend:
    """A ledger file; created with its directory if needed, its schema migrated (`migrate`)
    or only checked."""

    errors = (sqlite3.Error,)
    bad_row = (sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.IntegrityError)
    retry: tuple[type[BaseException], ...] = ()  # one writer at a time: no deadlock

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, lock_wait: float = 20.0,
                 migrate: bool = True) -> None:
        self.path = path
        self.where = str(path)
        self.busy_timeout = busy_timeout
        self.lock_wait = lock_wait
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._rconn = connect(path, busy_timeout)
        try:
            found = current(_Conn(self._rconn), SQLITE)
            if migrate and (found is None or found[0] < LATEST):
                migrate_file(path, wait=max(60.0, busy_timeout))
            self.schema_version = check(_Conn(self._rconn), SQLITE, self.where)
            self._wconn = connect(path, busy_timeout)
        except BaseException:
            self._rconn.close()
            raise

    @contextmanager
    def write(self, *, durable: bool = True, shared: bool = False) -> Iterator[_Conn]:
        """One transaction holding the file's write lock (`shared` or not: SQLite has one
        writer at a time). `durable` commits with synchronous=FULL (survives power loss);
        otherwise NORMAL (survives a crash)."""
        with self._wlock:
            conn = self._wconn
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            try:
                self._begin(conn)
                try:
                    yield _Conn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous = NORMAL")

    def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, retried while other writers hold the lock, up to `lock_wait`."""
        began = time.monotonic()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - began
                if not is_busy(exc):
                    raise
                if waited >= self.lock_wait:
                    raise LedgerBusy(
                        f"waited {waited:.1f}s for the write lock of {self.where}, held by "
                        "other writers; this transaction was not written") from exc

    @contextmanager
    def read(self) -> Iterator[_Conn]:
        with self._rlock:
            yield _Conn(self._rconn)

    def close(self) -> None:
        with self._wlock:
            self._wconn.close()
        with self._rlock:
            self._rconn.close()

    def after_fork(self) -> None:
        """In a forked child: fresh locks (the parent's may have been held at fork)."""
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()

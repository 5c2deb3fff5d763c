"""The embedded store: one SQLite file in WAL mode, shared by the processes of one machine.

Each process holds two connections, each behind a lock: writes (BEGIN IMMEDIATE takes the
file's write lock, so writers in every process take turns) and reads (WAL readers never wait
for the writer). Creates the schema, and upgrades a ledger written by an older release.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fraud.store import ddl


class _Conn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, statement: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(statement, params)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> int:
        return self.conn.executemany(statement, rows).rowcount


class SQLiteBackend:
    """A ledger file; created with its directory if needed."""

    errors = (sqlite3.Error,)
    bad_row = (sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.IntegrityError)

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.where = str(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._wconn = self._connect()
        self._init_schema()
        self._rconn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        deadline = time.monotonic() + self.busy_timeout
        while True:  # switching to WAL takes a lock another process may hold briefly
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise RuntimeError(f"could not put {self.path} in WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[_Conn]:
        """One transaction holding the file's write lock. `durable` commits with
        synchronous=FULL (survives power loss); otherwise NORMAL (survives a crash)."""
        with self._wlock:
            conn = self._wconn
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
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

    def _init_schema(self) -> None:
        with self.write(durable=False) as conn:
            for statement in ddl.OBSOLETE:
                conn.execute(statement)
            dialect = {"id": "INTEGER PRIMARY KEY", "int": "INTEGER", "real": "REAL",
                       "norowid": " WITHOUT ROWID"}
            for statement in _split_sql((ddl.TABLES + ddl.MOMENTS_TABLE).format(**dialect)):
                conn.execute(statement)
            for table, columns in ddl.MIGRATIONS.items():
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                for name, decl in columns:
                    if name not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} "
                                     + decl.format(**dialect))
            for name, table, event, condition, body in ddl.TRIGGERS:
                when = f" WHEN {condition}" if condition else ""
                create = f"CREATE TRIGGER {name} AFTER {event} ON {table}{when} BEGIN {body} END"
                found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                                     "AND name = ?", (name,)).fetchone()
                if found is None or found[0] != create:  # new, or an older definition
                    conn.execute(f"DROP TRIGGER IF EXISTS {name}")
                    conn.execute(create)
            for statement in _split_sql(ddl.INDEXES):
                conn.execute(statement)


def _split_sql(script: str) -> list[str]:
    """Split a schema script into statements."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements

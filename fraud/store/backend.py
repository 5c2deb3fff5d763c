"""Where the ledger keeps its rows: one small interface, two stores.

`FRAUDSERVE_LEDGER` names the store: a file path or `sqlite:///relative.db` /
`sqlite:////absolute.db` (embedded SQLite, the default, nothing to install) or
`postgresql://user:pass@host:5432/db` (PostgreSQL, for more than one replica). The ledger
(fraud/store/writer.py) speaks to either through `Backend`: short write transactions that are
serialised across every process using the store, and reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Any: ...


class Conn(Protocol):
    """A connection inside a transaction (writes) or in autocommit (reads); `?` placeholders."""

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> int: ...

    def insert_many(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> int:
        """`head` (INSERT INTO t (columns)) with all `rows`, then `tail` (ON CONFLICT ...), in
        as few statements as the store takes; how many rows were inserted or updated."""
        ...


class Backend(Protocol):
    """A store the ledger can use. Writes are one transaction each, serialised (in SQLite by
    its write lock, in PostgreSQL by an advisory lock), so compare-and-set and the checks of
    labels and looks stay simple; PostgreSQL lets decision commits (`shared`) run beside each
    other, and a commit it aborts to break a deadlock is simply run again (`retry`)."""

    where: str  # for messages and logs: a path, or a URL without its password
    errors: tuple[type[BaseException], ...]  # any failure of the store
    bad_row: tuple[type[BaseException], ...]  # the store refuses a row for its content
    retry: tuple[type[BaseException], ...]  # the transaction was rolled back: run it again

    def write(self, *, durable: bool = True,
              shared: bool = False) -> AbstractContextManager[Conn]:
        """A transaction. Committed, it survives a crash of any process; `durable` asks that
        it also survive power loss. `shared`: it only adds decisions and counts (fraud/store/
        rows.py), so it may run beside other shared ones, never beside any other write.
        Raises LedgerBusy (before the body runs, or from a lock wait inside it) when other
        writers held the lock past the backend's `lock_wait`."""
        ...

    def read(self) -> AbstractContextManager[Conn]: ...
    def close(self) -> None: ...
    def after_fork(self) -> None: ...


def open_backend(store: str | os.PathLike[str], *, busy_timeout: float = 5.0,
                 lock_wait: float = 20.0, migrate: bool = True) -> Backend:
    """The backend for a path or URL (see the module docstring). Its schema must be one this
    release runs on (fraud/store/version.py); a SQLite file is migrated first unless
    `migrate` is False, a PostgreSQL database never (fraud/store/migrate.py does). A write
    waits up to `lock_wait` s for the store's write lock before it fails alone (LedgerBusy)."""
    text = os.fspath(store)
    if re.match(r"postgres(ql)?(\+psycopg)?://", text):
        from fraud.store.postgres import PostgresBackend  # psycopg only when asked for

        return PostgresBackend(text, timeout=busy_timeout, lock_wait=lock_wait)
    from fraud.store.sqlite import SQLiteBackend

    return SQLiteBackend(sqlite_path(text), busy_timeout=busy_timeout, lock_wait=lock_wait,
                         migrate=migrate)


def sqlite_path(text: str) -> Path:
    """A path from a plain path or a `sqlite:///` URL (three slashes: relative, four: absolute)."""
    if "://" not in text:
        return Path(text)
    if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
        raise ValueError(f"FRAUDSERVE_LEDGER {redact(text)!r} is neither a path, a "
                         "sqlite:///path URL nor a postgresql://user:pass@host:port/db URL")
    return Path(text.removeprefix("sqlite:///"))


def redact(url: str) -> str:
    """The store's name for messages and logs, without its password. A PostgreSQL URL is read
    by libpq's own parser (psycopg.conninfo), so a password is found where the connection
    finds it (in the user info or ?password=, with any # or ? in it) and the answer is its
    conninfo with password=***; one libpq cannot read is not shown at all. Any other URL
    loses its user info and query."""
    if re.match(r"postgres(ql)?(\+psycopg)?://", url):
        try:
            from psycopg.conninfo import conninfo_to_dict, make_conninfo

            params = conninfo_to_dict(url.replace("+psycopg", "", 1))
        except Exception:  # psycopg missing, or a URL libpq refuses
            return "postgresql://(a URL libpq cannot read: not shown)"
        if "password" in params:
            params["password"] = "***"
        return make_conninfo(**params)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "sqlite":
        return url
    return f"{scheme}://{'***@' if '@' in rest else ''}{rest.rsplit('@', 1)[-1].split('?')[0]}"

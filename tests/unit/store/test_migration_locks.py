"""A migration beside live traffic: on PostgreSQL a long transaction holding a table makes the
migration fail fast (lock_timeout), naming the table and who holds it, while writers keep
going; on SQLite a long reader holds up neither, and a write lock held too long fails the
migration naming that lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ledger_support import dec, raw
from migration_support import future

from fraud.store.migrate import migrate
from fraud.store.migrations import LATEST, MigrationError
from fraud.store.writer import Ledger


def version(store: str | Path) -> int:
    return int(raw(store, "SELECT MAX(version) FROM schema_version")[0][0])


@pytest.mark.postgres
def test_a_long_reader_makes_the_migration_fail_fast_naming_the_lock(postgres: Any) -> None:
    import psycopg

    url = postgres.create_database()
    migrate(url)
    with Ledger(url) as led, psycopg.connect(url) as reader:
        led.record(dec("before")).result()
        reader.execute("SELECT COUNT(*) FROM decisions").fetchone()  # its transaction stays open
        result: dict[str, Any] = {}

        def migrator() -> None:
            began = time.monotonic()
            try:
                migrate(url, migrations=future(), lock_timeout=1.0)
            except MigrationError as exc:
                result["error"] = str(exc)
            result["took"] = time.monotonic() - began

        thread = threading.Thread(target=migrator)
        thread.start()
        time.sleep(0.3)  # the migration now waits for `decisions`; writers queue behind it
        began = time.monotonic()
        led.record(dec("during")).result(timeout=30)
        write_took = time.monotonic() - began
        thread.join(60)
        assert not thread.is_alive()
        error = result["error"]
        assert (f"migration {LATEST + 1} (future) could not take table decisions within "
                "lock_timeout=1s") in error
        assert f"pid {reader.info.backend_pid} (AccessShareLock on decisions, idle in " \
               "transaction" in error and "SELECT COUNT(*) FROM decisions" in error
        assert "s3cret" not in error
        # Failed fast (not when the reader ends: it still holds its lock), and the writer
        # waited for the lock_timeout at most, not for the reader.
        assert result["took"] < 10 and write_took < 10, (result, write_took)
        assert version(url) == LATEST  # nothing of it applied
        reader.rollback()
    assert migrate(url, migrations=future()).applied == [LATEST + 1]  # the reader gone
    with Ledger(url) as led:  # this release runs on the newer, compatible schema
        assert led.lookup("during") is not None


def test_sqlite_a_long_reader_holds_up_neither_the_migration_nor_the_writers(
        sqlite_db: Path) -> None:
    with Ledger(sqlite_db) as led:
        led.record(dec("before")).result()
        reader = sqlite3.connect(sqlite_db, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM decisions").fetchone()  # a WAL snapshot
            assert migrate(sqlite_db, migrations=future(), wait=5.0).applied == [LATEST + 1]
            led.record(dec("during")).result(timeout=10)
            assert reader.execute("SELECT COUNT(*) FROM decisions").fetchone() == (1,)
        finally:
            reader.close()
        assert led.lookup("during") is not None
    assert version(sqlite_db) == LATEST + 1


def test_sqlite_a_write_lock_held_too_long_fails_the_migration_naming_it(
        sqlite_db: Path) -> None:
    migrate(sqlite_db)
    holder = sqlite3.connect(sqlite_db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(MigrationError, match=r"could not take the write lock of the SQLite "
                                                 r"ledger .*ledger\.db within 0\.5s"):
            migrate(sqlite_db, migrations=future(), wait=0.5)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert version(sqlite_db) == LATEST
    assert migrate(sqlite_db, migrations=future()).applied == [LATEST + 1]

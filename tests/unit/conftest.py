"""Fixtures of the unit tests: a fresh ledger store of each backend, and an open ledger on it.

`db` is a store for `Ledger(...)`: a SQLite file (in a directory that does not exist yet) or
a fresh database on the session's real PostgreSQL server, migrated to the latest schema (a
PostgreSQL worker never creates it: fraud/store/migrate.py), so every ledger test that takes
`db` or `ledger` runs against both backends. `bare_db` is the same store before any schema;
`sqlite_db` is for what only SQLite has.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud.store.migrate import migrate
from fraud.store.writer import Ledger


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "ledger.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bare_db(request: pytest.FixtureRequest, sqlite_db: Path) -> str:
    if request.param == "sqlite":
        return str(sqlite_db)
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def db(bare_db: str) -> str:
    if bare_db.startswith("postgresql://"):
        migrate(bare_db)
    return bare_db


@pytest.fixture
def ledger(db: str) -> Iterator[Ledger]:
    with Ledger(db) as led:
        yield led

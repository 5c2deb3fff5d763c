"""Fixtures of the unit tests: a fresh ledger file and an open ledger on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud.ledger import SQLiteLedger


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "ledger.db"


@pytest.fixture
def ledger(db: Path) -> Iterator[SQLiteLedger]:
    with SQLiteLedger(db) as led:
        yield led

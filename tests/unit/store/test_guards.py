"""FRAUDSERVE_REQUIRE_SHARED_LEDGER: a SQLite ledger is a start-up error that says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraud.config import PROJECT_ROOT
from fraud.store.guards import SharedLedgerRequired, default_store, require_shared_ledger

PG = "postgresql://fraudserve:pw@db:5432/fraudserve"


@pytest.mark.parametrize("store", ["/data/ledger.sqlite", "sqlite:///ledger.db"])
def test_a_sqlite_ledger_is_refused_when_a_shared_one_is_required(store: str) -> None:
    with pytest.raises(SharedLedgerRequired) as refused:
        require_shared_ledger(store, {"FRAUDSERVE_REQUIRE_SHARED_LEDGER": "1"})
    message = str(refused.value)
    assert "FRAUDSERVE_REQUIRE_SHARED_LEDGER=1" in message and store in message
    assert "one machine" in message and "postgresql://" in message


@pytest.mark.parametrize("env", [{}, {"FRAUDSERVE_REQUIRE_SHARED_LEDGER": "0"},
                                 {"FRAUDSERVE_REQUIRE_SHARED_LEDGER": ""}])
def test_sqlite_is_fine_unless_required(env: dict[str, str]) -> None:
    require_shared_ledger("/data/ledger.sqlite", env)


@pytest.mark.parametrize("store", [PG, "postgres://u:p@h/db", "postgresql+psycopg://u@h/db"])
def test_postgresql_is_a_shared_ledger(store: str) -> None:
    require_shared_ledger(store, {"FRAUDSERVE_REQUIRE_SHARED_LEDGER": "1"})


def test_a_misspelt_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match="must be 1 or 0"):
        require_shared_ledger(PG, {"FRAUDSERVE_REQUIRE_SHARED_LEDGER": "please"})


def test_the_default_store_is_the_services() -> None:
    assert default_store({"FRAUDSERVE_LEDGER": PG}) == PG
    assert default_store({}) == str(PROJECT_ROOT / "data" / "ledger.sqlite")


def test_the_migrator_refuses_sqlite_when_a_shared_ledger_is_required(tmp_path: Path) -> None:
    env = {**os.environ, "FRAUDSERVE_REQUIRE_SHARED_LEDGER": "1"}
    done = subprocess.run([sys.executable, "-m", "fraud.store.migrate", "--ledger",
                           str(tmp_path / "ledger.sqlite")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "FRAUDSERVE_REQUIRE_SHARED_LEDGER=1" in done.stderr
    assert not (tmp_path / "ledger.sqlite").exists()

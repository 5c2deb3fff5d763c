"""Session fixtures: one real training run and one real gate run shared by the suite."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Server, Store, run_gate, serve, train
from postgres import PostgresServer, bindir


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Champion and challenger trained with configs/training.yaml into a temp store."""
    return train(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def gate_report(trained_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gate run on the trained store; its report lets the service become ready."""
    report = tmp_path_factory.mktemp("gate") / "gate_report.json"
    result = run_gate(trained_store, report)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return report


@pytest.fixture(scope="module")
def server(trained_store: Store, gate_report: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `bentoml serve` with 2 API workers on a free port, on gated models.

    No API keys: open mode, as `make serve` runs (every route open, no rate limit), so the API
    tests read like the reference's clients; tests/service/test_api_keys.py serves with keys."""
    workdir = tmp_path_factory.mktemp("serve")
    with serve(trained_store, workdir, FRAUDSERVE_GATE_REPORT=str(gate_report)) as srv:
        yield srv


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's package) for the session; fresh databases per test."""
    if bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing in CI: `make sysdeps` installs it")
        pytest.skip("PostgreSQL not installed: `make sysdeps` installs it")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()

"""The published schema is the contract: schemathesis (all checks; examples, coverage and
fuzzing phases; a fixed seed and example budget) against a live service with keys configured
answers with 0 failures. The summary is printed (`pytest -rP` shows it)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BIN, ROOT, Server, Store, serve

pytestmark = [pytest.mark.service, pytest.mark.slow]

KEY = "schemathesis-all-scopes-Vq8Lr3Tz6Wm1Xp4N"  # >= 32 characters


@pytest.fixture(scope="module")
def keyed(trained_store: Store, gate_report: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(trained_store, tmp_path_factory.mktemp("contract"),
               FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_API_KEYS=f"score+label+admin:{KEY}",
               FRAUDSERVE_RATE_LIMIT_PER_MIN="0") as srv:
        yield srv


def test_schemathesis_finds_no_failure(keyed: Server) -> None:
    tool = BIN / "schemathesis"
    if not tool.exists() and shutil.which("schemathesis") is None:
        pytest.fail("schemathesis is missing: `make install` installs the test extras")
    done = subprocess.run(
        [str(tool), "run", f"{keyed.url}/docs.json", "--checks", "all",
         "--phases", "examples,coverage,fuzzing", "--seed", "1", "--max-examples", "25",
         "--request-timeout", "30", "-H", f"Authorization: Bearer {KEY}",
         "--no-color"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]

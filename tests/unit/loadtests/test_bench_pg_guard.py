"""The bench's PostgreSQL server (loadtests/bench/pg.py) does not outlive a bench killed outright:
a real server, a real SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from loadtests.bench.pg import postmaster_pid
from loadtests.run import ROOT

BENCH = """
import sys, time
from pathlib import Path
from loadtests.bench.pg import postgres_ledger
with postgres_ledger(Path(sys.argv[1])) as url:
    print(url, flush=True)
    time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.postgres
def test_a_bench_killed_with_sigkill_leaves_no_server_running() -> None:
    root = Path(tempfile.mkdtemp(prefix="fraudserve-bench-pg-")) / "pg"
    root.parent.chmod(0o755)  # as a report directory is: the postgres user passes through
    bench = subprocess.Popen([sys.executable, "-c", BENCH, str(root)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        assert bench.stdout is not None
        assert bench.stdout.readline().startswith("postgresql://"), "the server did not start"
        pid = postmaster_pid(root / "data")
        assert pid is not None and alive(pid)
        bench.kill()  # SIGKILL: no finally runs in the bench
        bench.wait(timeout=10)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid), "the bench's PostgreSQL outlived the bench"
    finally:
        if bench.poll() is None:
            bench.kill()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGQUIT)
        shutil.rmtree(root.parent, ignore_errors=True)

"""`make serve` listens on 127.0.0.1 unless HOST says otherwise (issue 23: it listened on
every interface, open, with no keys)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers import ROOT


def serve_line(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "serve", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return next(line for line in out.splitlines() if "bentoml serve" in line)


def test_make_serve_binds_loopback_by_default() -> None:
    assert "--host 127.0.0.1 --port 3000" in serve_line()


def test_host_opens_it_on_purpose() -> None:
    assert "--host 0.0.0.0 --port 8080" in serve_line("HOST=0.0.0.0", "PORT=8080")

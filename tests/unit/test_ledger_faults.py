"""The ledger fails closed, for real: a full disk (a small tmpfs, filled).

A decision that cannot be committed fails its caller (the service answers 503), memory stays
bounded, `problem` names the cause, and the ledger recovers by itself once it can write again.
Needs root to mount a tmpfs (CI runs as root); skipped, saying so, where mounting is refused.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud.ledger import Decision, LedgerUnavailable, SQLiteLedger


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def dec(rid: str) -> Decision:
    return Decision(rid, time.time(), f"u-{rid}", "model_a", "a:1", 0.1, False, 1.0,
                    "predict", 1, 1)


def fill(disk: Path) -> Path:
    """Take every free byte of the filesystem."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_fails_the_callers_bounds_memory_and_recovers(small_disk: Path) -> None:
    with SQLiteLedger(small_disk / "ledger.sqlite", max_pending=500) as led:
        led.record([dec("before")]).result(timeout=5)
        filler = fill(small_disk)
        failed = 0
        for i in range(200):  # enough rows to need new pages
            if failed >= 3:
                break
            batch = [dec(f"{i}-{j}-{uuid.uuid4().hex}") for j in range(20)]
            try:
                led.record(batch).result(timeout=10)
            except LedgerUnavailable as exc:
                failed += 1
                assert "ledger.sqlite" in str(exc) and "full" in str(exc).lower(), exc
        assert failed > 0 and led.problem and "full" in led.problem.lower()
        assert led.write_failures >= failed
        assert led.pending() <= 500  # nothing piles up: failed decisions are not kept
        # Back-pressure: beyond max_pending waiting rows, record refuses at once.
        with led._wlock, pytest.raises(LedgerUnavailable, match="already wait"):  # writer held
            for i in range(30):
                led.record([dec(f"wait-{i}-{j}") for j in range(20)])
        os.remove(filler)  # space again: the ledger recovers on its own
        deadline = time.monotonic() + 10
        while led.problem and time.monotonic() < deadline:
            try:
                led.record([dec(f"after-{uuid.uuid4().hex}")]).result(timeout=5)
            except LedgerUnavailable:
                time.sleep(0.1)
        assert led.problem is None
        assert led.lookup("before") is not None

"""A real `bentoml serve` refuses a rate-limit state it cannot trust (issue 23: a symlinked or
pre-created file in the shared /tmp was used as is): the start stops (exit 2) naming the
file and the reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import Store, serve

pytestmark = [pytest.mark.service]

KEYS = "score:Kp3Vx8Qm1Tz6Wr4Ln9Yb2Hc5Js7Fd0Ga"


def symlinked(tmp_path: Path) -> tuple[Path, str]:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (tmp_path / "victim").write_bytes(b"")
    (state / "rate.bin").symlink_to(tmp_path / "victim")
    return state / "rate.bin", "is a symbolic link"


def in_shared_dir(tmp_path: Path) -> tuple[Path, str]:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared / "rate.bin", "can be written by other users"


def precreated(tmp_path: Path) -> tuple[Path, str]:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = state / "rate.bin"
    path.write_bytes(b"\0" * 4096)
    if os.getuid() == 0:  # root can hand it to another user, as an attacker's file would be
        os.chown(path, os.getuid() + 4242, -1)
        path.chmod(0o600)
        return path, f"belongs to uid {os.getuid() + 4242}"
    path.chmod(0o666)
    return path, "others may read or write it"


@pytest.mark.parametrize("make", [symlinked, in_shared_dir, precreated],
                         ids=["symlink", "shared-dir", "precreated"])
def test_an_untrusted_state_file_stops_the_start(trained_store: Store, tmp_path: Path,
                                                 make: object) -> None:
    path, words = make(tmp_path)  # type: ignore[operator]
    with serve(trained_store, tmp_path, expect_ready=False, FRAUDSERVE_API_KEYS=KEYS,
               FRAUDSERVE_RATE_STATE=str(path)) as srv:
        srv.proc.wait(timeout=120)
        text = srv.logs()
    assert srv.proc.returncode != 0, text[-2000:]
    assert words in text and str(path) in text, text[-2000:]
    assert "Traceback" not in text, text[-3000:]

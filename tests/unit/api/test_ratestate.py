"""The rate buckets' file (issue 23): it lived in the shared /tmp under a predictable name,
followed symbolic links and accepted a file another user made (a negative count locked a key
out for good, zeros lifted the limit, a refused file made every keyed request a 500). Now: a
private directory, O_NOFOLLOW, the owner and mode checked, nonsense counts ignored, and an
I/O error answered 503."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fraud.api.auth import KeyRing, parse_keys
from fraud.api.middleware import SecurityMiddleware
from fraud.api.ratelimit import RateLimiter, RateSettings, key_id
from fraud.api.ratestate import (
    SLOT,
    SharedFileStore,
    StateUnsafe,
    check_state,
    default_state_path,
)
from fraud.api.settings import LimitSettings, security_settings
from fraud.config import ABConfig

FROZEN = 1000.0
ROOT = os.getuid() == 0  # only root can hand a file or directory to another user here
OTHER = os.getuid() + 4242


def test_the_default_lives_in_a_private_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    path = default_state_path({"XDG_RUNTIME_DIR": str(runtime)})
    assert path == runtime / "fraudserve" / f"rate-{os.getppid()}.bin"
    assert (path.parent.stat().st_mode & 0o777) == 0o700


def test_without_xdg_runtime_dir_a_directory_of_our_own_in_the_temp_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    path = default_state_path({})
    assert path.parent == tmp_path / f"fraudserve-{os.getuid()}"
    (tmp_path / f"fraudserve-{os.getuid()}").chmod(0o755)
    with pytest.raises(StateUnsafe, match="it must be 0700"):
        default_state_path({})


def test_a_directory_that_is_a_link_or_someone_elses_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    runtime = tmp_path / "run"
    runtime.mkdir()
    (runtime / "fraudserve").symlink_to(elsewhere)
    with pytest.raises(StateUnsafe, match="not a directory"):
        default_state_path({"XDG_RUNTIME_DIR": str(runtime)})
    if ROOT:
        (runtime / "fraudserve").unlink()
        (runtime / "fraudserve").mkdir(mode=0o700)
        os.chown(runtime / "fraudserve", OTHER, -1)
        with pytest.raises(StateUnsafe, match=f"belongs to uid {OTHER}"):
            default_state_path({"XDG_RUNTIME_DIR": str(runtime)})


def test_a_named_file_in_a_shared_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    with pytest.raises(StateUnsafe, match="can be written by other users"):
        check_state({"FRAUDSERVE_RATE_STATE": str(shared / "rate.bin")})
    with pytest.raises(StateUnsafe, match="can be written by other users"):
        security_settings(ABConfig(), {"FRAUDSERVE_RATE_STATE": str(shared / "rate.bin")})


def test_a_symlinked_state_file_is_refused_at_start_and_on_open(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"")
    link = tmp_path / "rate.bin"
    link.symlink_to(target)
    with pytest.raises(StateUnsafe, match="is a symbolic link"):
        check_state({"FRAUDSERVE_RATE_STATE": str(link)})
    limiter = RateLimiter(RateSettings(), SharedFileStore(link), lambda: FROZEN)
    with pytest.raises(StateUnsafe, match="is a symbolic link"):
        limiter.check(b"key")
    assert target.read_bytes() == b""  # nothing was written through the link


@pytest.mark.parametrize("how", ["mode", "links", *(["owner"] if ROOT else [])])
def test_a_precreated_state_file_is_refused(tmp_path: Path, how: str) -> None:
    path = tmp_path / "rate.bin"
    path.write_bytes(b"\0" * SLOT.size * 16)
    path.chmod(0o600)
    if how == "mode":
        path.chmod(0o666)
        words = "others may read or write it"
    elif how == "links":
        os.link(path, tmp_path / "another-name")
        words = "has 2 links"
    else:
        os.chown(path, OTHER, -1)
        words = f"belongs to uid {OTHER}"
    with pytest.raises(StateUnsafe, match=words):
        check_state({"FRAUDSERVE_RATE_STATE": str(path)})
    with pytest.raises(StateUnsafe, match=words):
        SharedFileStore(path).transact(1, lambda b: ((1.0, 0.0), 0.0))


@pytest.mark.parametrize("bucket", [(-1e9, FROZEN), (float("nan"), FROZEN),
                                    (0.0, FROZEN + 1e9), (1e9, FROZEN)])
def test_a_count_that_take_could_not_have_written_starts_full(tmp_path: Path,
                                                              bucket: tuple) -> None:
    """A negative count no longer locks a key out, nor does a stamp in the far future."""
    path = tmp_path / "rate.bin"
    store = SharedFileStore(path, slots=16)
    limiter = RateLimiter(RateSettings(per_min=60, burst=2), store, lambda: FROZEN)
    assert limiter.check(b"key") == 0.0
    ident = key_id(b"key")
    data = bytearray(path.read_bytes())
    offset = (ident % 16) * SLOT.size
    struct.pack_into("<Qdd", data, offset, ident, *bucket)
    path.write_bytes(bytes(data))
    fresh = RateLimiter(RateSettings(per_min=60, burst=2), SharedFileStore(path, slots=16),
                        lambda: FROZEN)
    assert [fresh.check(b"key") for _ in range(3)][:2] == [0.0, 0.0]  # a full burst again


class Broken:
    """A store whose file the kernel refuses."""

    def transact(self, ident: int, fn: object) -> float:
        raise PermissionError(13, "Permission denied", "/run/fraudserve/rate.bin")


def test_an_io_error_of_the_state_is_a_503_not_a_500() -> None:
    key = "k" * 40

    async def ok(_: object) -> JSONResponse:
        return JSONResponse({"ok": True})

    limiter = RateLimiter(RateSettings(), Broken())  # type: ignore[arg-type]
    app = Starlette(routes=[Route("/predict", ok, methods=["POST"])], middleware=[Middleware(
        SecurityMiddleware, keys=KeyRing(parse_keys(f"score:{key}", "t")),
        limits=LimitSettings(), limiter=limiter, anonymous=limiter)])
    client = TestClient(app, raise_server_exceptions=False)
    for headers in ({"Authorization": f"Bearer {key}"}, {}):
        answer = client.post("/predict", content=b"{}", headers=headers)
        assert answer.status_code == 503, answer.text
        assert "RATE_STATE_UNAVAILABLE" in answer.json()["error"]
        assert "/run/fraudserve" not in answer.text  # the path goes to the log only

"""The rate buckets' shared file, and why it can be trusted.

All API workers of one `bentoml serve` share their buckets in a small memory-mapped file,
updated under an exclusive lock (flock across processes, a mutex across threads). Whoever can
write that file decides every client's limit (a negative count locks a key out, zeros lift
the limit), so it lives in a private directory: `$XDG_RUNTIME_DIR/fraudserve`, else
`<temp dir>/fraudserve-<uid>`, created 0700 and refused unless it is a real directory of the
service's user that nobody else can enter. FRAUDSERVE_RATE_STATE names the file instead; its
directory must then belong to the service's user and be writable by nobody else.

The file is opened with O_NOFOLLOW (a symbolic link is refused) and must be a regular file
of the service's user, with one link, readable and writable by nobody else. A directory or
file that breaks a rule is a start-up error (`check_state`, StateUnsafe); the same check on
every open turns into a 503 on a request (never a 500).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import mmap
import os
import stat
import struct
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

STATE_ENV = "FRAUDSERVE_RATE_STATE"
Bucket = tuple[float, float]  # (tokens left, monotonic time of the last update)
SLOT = struct.Struct("<Qdd")  # key id (0: free), tokens, stamp
PROBES = 16


class StateUnsafe(ValueError):
    """The rate-limit state's directory or file cannot be trusted; says which and why."""


def _own(path: Path, info: os.stat_result, what: str) -> None:
    if info.st_uid != os.getuid():
        raise StateUnsafe(f"{what} {path} belongs to uid {info.st_uid}, not to the service's "
                          f"user (uid {os.getuid()})")


def private_dir(path: Path) -> Path:
    """`path`, created 0700 if missing, and checked: a directory (not a link) of ours that no
    one else may enter."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise StateUnsafe(f"rate-limit directory {path} is not a directory (a symbolic link "
                          "or a file): remove it")
    _own(path, info, "rate-limit directory")
    if info.st_mode & 0o077:
        raise StateUnsafe(f"rate-limit directory {path} has mode "
                          f"{oct(info.st_mode & 0o777)}: it must be 0700 (chmod 700 it)")
    return path


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The private directory of the default state file."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "fraudserve" if runtime else (
        Path(tempfile.gettempdir()) / f"fraudserve-{os.getuid()}")
    return private_dir(base)


def named_dir(path: Path) -> Path:
    """FRAUDSERVE_RATE_STATE's directory: ours, and writable by nobody else (else anyone could
    replace the file)."""
    info = os.stat(path.parent)
    _own(path.parent, info, f"{STATE_ENV}={path}: its directory")
    if info.st_mode & 0o022:
        raise StateUnsafe(f"{STATE_ENV}={path}: its directory can be written by other "
                          "users: put the file in a directory only the service can write")
    return path.parent


def default_state_path(environ: Mapping[str, str] = os.environ) -> Path:
    """FRAUDSERVE_RATE_STATE, else a file in the private directory named after this
    worker's parent: the one `bentoml serve` process whose workers share it."""
    if environ.get(STATE_ENV):
        path = Path(environ[STATE_ENV])
        named_dir(path)
        return path
    return state_dir(environ) / f"rate-{os.getppid()}.bin"


def trusted(fd: int, path: Path) -> None:
    """Refuse an open state file that is not a private regular file of ours with one link."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StateUnsafe(f"rate-limit state {path} is not a regular file")
    _own(path, info, "rate-limit state")
    if info.st_mode & 0o077:
        raise StateUnsafe(f"rate-limit state {path} has mode {oct(info.st_mode & 0o777)}: "
                          "others may read or write it (it must be 0600)")
    if info.st_nlink != 1:
        raise StateUnsafe(f"rate-limit state {path} has {info.st_nlink} links: another name "
                          "for it may be writable by others")


def open_state(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """The state file, opened without following a link and checked (trusted)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateUnsafe(f"rate-limit state {path} is a symbolic link") from None
        raise
    try:
        trusted(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_state(environ: Mapping[str, str] = os.environ) -> Path:
    """At start: the state's directory, and its file if it exists already, can be trusted
    (StateUnsafe or OSError says why not). Returns the path."""
    path = default_state_path(environ)
    with contextlib.suppress(FileNotFoundError):
        os.close(open_state(path, os.O_RDONLY))
    return path


class SharedFileStore:
    """Buckets in a memory-mapped file shared by processes; opened lazily in each process."""

    def __init__(self, path: Path | None = None, slots: int = 4096) -> None:
        self._path, self._slots = path, slots
        self._lock = threading.Lock()
        self._pid = -1
        self._fd = -1
        self._map: mmap.mmap | None = None

    @property
    def path(self) -> Path:
        return self._path or default_state_path()

    def _open(self) -> mmap.mmap:
        if self._map is not None and self._pid == os.getpid():
            return self._map
        # A forked child shares its parent's open file and so its flock: open our own.
        size = SLOT.size * self._slots
        fd = open_state(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            mapped = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._pid, self._map = fd, os.getpid(), mapped
        return self._map

    def _slot(self, mem: mmap.mmap, ident: int) -> tuple[int, Bucket | None]:
        """The slot holding `ident`, else a free one, else the least recently used."""
        free, oldest, oldest_stamp = -1, -1, math.inf
        for i in range(PROBES):
            index = (ident + i) % self._slots
            held, tokens, stamp = SLOT.unpack_from(mem, index * SLOT.size)
            if held == ident:
                return index, (tokens, stamp)
            if held == 0 and free < 0:
                free = index
            if held != 0 and stamp < oldest_stamp:
                oldest, oldest_stamp = index, stamp
        return (free if free >= 0 else oldest), None

    def transact(self, ident: int, fn: Callable[[Bucket | None], tuple[Bucket, float]]
                 ) -> float:
        with self._lock:
            mem = self._open()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                index, bucket = self._slot(mem, ident)
                (tokens, stamp), wait = fn(bucket)
                SLOT.pack_into(mem, index * SLOT.size, ident, tokens, stamp)
                return wait
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

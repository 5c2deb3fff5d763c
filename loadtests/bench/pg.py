"""A throwaway PostgreSQL server for the bench's "postgres" service, started and stopped here.

Debian's `postgresql` package (`make sysdeps`): `initdb` into `<report dir>/pg-postgres/data`,
then `pg_ctl start` listening on 127.0.0.1 on a free port, its unix socket in
`<report dir>/pg-postgres` (or a temp directory when that path is too long for a socket).
The server refuses to run as root, so under root every tool runs as the `postgres` OS user
(`runuser -u postgres --`), as tests/postgres.py does. Host connections from 127.0.0.1 are
trusted (a bench on one machine, nothing to protect); the ledger's schema is applied with
`fraud.store.migrate.migrate` before the service starts, as a deploy's migrator would.

`postgres_ledger(root)` is a context manager: the server is stopped in `finally` (pg_ctl stop
-m fast, then SIGQUIT to the postmaster's PID from postmaster.pid if that did not work), so a
failed phase or Ctrl-C does not leave it running; then its data directory is removed (the
server's log, `<report dir>/pg-postgres/postgres.log`, stays). `pg_ctl` detaches the server,
so a bench killed outright (SIGKILL: no `finally`) would leave it behind: a guard process
(`guard_cmd`, a shell loop in its own session) polls the bench's PID every second and stops
the server (immediate mode) once the bench is gone.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from loadtests.run import free_port

USER = "fraudserve"
SOCKET_PATH_MAX = 100  # a unix socket path is at most 107 bytes; leave room for its name


class PostgresFailed(RuntimeError):
    """The bench's PostgreSQL server is not installed or did not start."""


def bindir() -> Path | None:
    """The newest installed server's bin directory, or None if there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def as_user(euid: int) -> list[str]:
    """The prefix that runs a server tool as the `postgres` OS user when we are root."""
    return ["runuser", "-u", "postgres", "--"] if euid == 0 else []


def initdb_cmd(bins: Path, data: Path) -> list[str]:
    return [str(bins / "initdb"), "-D", str(data), "-U", USER, "--auth-local=trust",
            "--auth-host=trust", "-E", "UTF8", "--locale=C.UTF-8"]


def server_options(port: int, socket_dir: Path) -> str:
    """postgres -c settings: loopback only, enough connections for every worker's."""
    return (f"-c listen_addresses=127.0.0.1 -c port={port} -c max_connections=200"
            f" -c unix_socket_directories={socket_dir} -c shared_buffers=128MB")


def start_cmd(bins: Path, data: Path, port: int, socket_dir: Path, log: Path) -> list[str]:
    return [str(bins / "pg_ctl"), "-D", str(data), "-o", server_options(port, socket_dir),
            "-l", str(log), "-w", "-t", "60", "start"]


def stop_cmd(bins: Path, data: Path, mode: str = "fast") -> list[str]:
    return [str(bins / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "30", "stop"]


def guard_cmd(prefix: list[str], bins: Path, data: Path, owner: int) -> list[str]:
    """A shell loop that outlives `owner` (the bench's PID) by at most a second, then stops the
    server. Ended by the bench itself (SIGTERM) when it stops the server on its own."""
    stop = " ".join(shlex.quote(a) for a in [*prefix, *stop_cmd(bins, data, "immediate")])
    return ["sh", "-c", f"while kill -0 {owner} 2>/dev/null; do sleep 1; done; "
            f"{stop} >/dev/null 2>&1"]


def ledger_url(port: int, database: str = "postgres") -> str:
    return f"postgresql://{USER}@127.0.0.1:{port}/{database}"


def postmaster_pid(data: Path) -> int | None:
    """The running postmaster's PID from its postmaster.pid (first line), if any."""
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _stop(prefix: list[str], bins: Path, data: Path) -> None:
    pid = postmaster_pid(data)
    if pid is None:
        return
    with suppress(OSError, subprocess.SubprocessError):
        subprocess.run([*prefix, *stop_cmd(bins, data)], capture_output=True, timeout=60,
                       check=True)
    if postmaster_pid(data) == pid:  # pg_ctl could not stop it: immediate shutdown by PID
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)


@contextmanager
def postgres_ledger(root: Path, keep_data: bool = False) -> Iterator[str]:
    """A PostgreSQL server with its data in `root`/data; yields its ledger URL (no schema).
    Once stopped, its data directory is removed unless `keep_data`; its log stays."""
    bins = bindir()
    if bins is None:
        raise PostgresFailed("PostgreSQL is not installed: `make sysdeps` (or apt-get install "
                           "postgresql) installs it; --no-postgres skips the service")
    root.mkdir(parents=True, exist_ok=True)
    data, log = root / "data", root / "postgres.log"
    sockets = root if len(str(root)) < SOCKET_PATH_MAX else Path(
        tempfile.mkdtemp(prefix="fraudserve-pg-"))
    prefix = as_user(os.geteuid())
    if prefix:  # the postgres OS user owns the directories it writes
        pw = pwd.getpwnam("postgres")
        for path in {root, sockets}:
            os.chown(path, pw.pw_uid, pw.pw_gid)
    port = free_port()
    guard: subprocess.Popen[bytes] | None = None
    try:
        try:
            subprocess.run([*prefix, *initdb_cmd(bins, data)], capture_output=True,
                           timeout=120, check=True, cwd=root)
            subprocess.run([*prefix, *start_cmd(bins, data, port, sockets, log)],
                           capture_output=True, timeout=120, check=True, cwd=root)
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or b"").decode(errors="replace")[-400:]
            raise PostgresFailed(f"PostgreSQL did not start ({exc.cmd[len(prefix)]}): {tail}; "
                               f"see {log}") from exc
        guard = subprocess.Popen(guard_cmd(prefix, bins, data, os.getpid()),
                                 start_new_session=True, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield ledger_url(port)
    finally:
        if guard is not None:  # a guard that does not exit must not keep the server up
            guard.terminate()
            with suppress(subprocess.TimeoutExpired):
                guard.wait(timeout=10)
        _stop(prefix, bins, data)
        if not keep_data and postmaster_pid(data) is None:  # stopped: its files go (~150 MB)
            shutil.rmtree(data, ignore_errors=True)

"""The dev StatefulSet's start script (deploy/k8s/postgres/start.sh), run for real against the
PostgreSQL server binaries Debian packages (the image it runs in there, CloudNativePG's, has
the same PGDG binaries): an empty volume is initialised with the role, password and database
the Secret names; the ledger URL deploy.secrets writes then connects over TCP with that
password; a second start keeps the data and the password."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from helpers import free_port, stop
from postgres import bindir

from deploy import secrets
from deploy.render import K8S

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SCRIPT = K8S / "postgres" / "start.sh"


@pytest.fixture
def workdir() -> Iterator[Path]:
    if bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing in CI: `make sysdeps` installs it")
        pytest.skip("PostgreSQL not installed: `make sysdeps` installs it")
    root = Path(tempfile.mkdtemp(prefix="fraudserve-devpg-"))
    if os.geteuid() == 0:  # the server refuses root: run as `postgres`, as the pod runs uid 26
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def start(root: Path, password: str, port: int) -> Iterator[subprocess.Popen]:
    secret = root / "password"
    secret.write_text(password)
    secret.chmod(0o440)
    env = {"PATH": f"{bindir()}:{os.environ['PATH']}", "PGDATA": str(root / "data"),
           "POSTGRES_USER": secrets.DEV_DB["user"], "POSTGRES_DB": secrets.DEV_DB["db"],
           "POSTGRES_PASSWORD_FILE": str(secret), "PGPORT": str(port), "PGSOCKET": str(root),
           "HOME": str(root)}
    as_user = []
    if os.geteuid() == 0:
        os.chown(secret, pwd.getpwnam("postgres").pw_uid, -1)
        as_user = ["runuser", "-u", "postgres", "--"]
    with open(root / "start.log", "ab") as log:
        proc = subprocess.Popen([*as_user, "env", *[f"{k}={v}" for k, v in env.items()],
                                 "bash", str(SCRIPT)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=root)
        try:
            yield proc
        finally:
            stop(proc)


def connect(url: str, root: Path, timeout: float = 60) -> psycopg.Connection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(url, connect_timeout=3)
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc) or time.monotonic() > deadline:
                raise AssertionError(f"{exc}\n{(root / 'start.log').read_text()[-2000:]}") \
                    from None
            time.sleep(0.5)


def test_start_initialises_once_and_the_secrets_url_connects(workdir: Path) -> None:
    password, port = secrets.token(), free_port()
    user, db = secrets.DEV_DB["user"], secrets.DEV_DB["db"]
    url = f"postgresql://{user}:{password}@127.0.0.1:{port}/{db}"
    with start(workdir, password, port):
        with connect(url, workdir) as conn:
            assert conn.execute("select current_user, current_database()").fetchone() == (
                user, db)
            owner = conn.execute("select pg_get_userbyid(datdba) from pg_database "
                                 "where datname = current_database()").fetchone()[0]
            assert owner == user
            conn.execute("create table kept (x int)")
            conn.execute("insert into kept values (1)")
            conn.commit()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url.replace(password, "wrong"), connect_timeout=3)
    assert "initialised" in (workdir / "start.log").read_text()
    # Restarted on the same volume: no second init, same password, the data still there.
    with start(workdir, password, port), connect(url, workdir) as conn:
        assert conn.execute("select x from kept").fetchone() == (1,)
    assert (workdir / "start.log").read_text().count("initialised") == 1

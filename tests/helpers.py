"""Test helpers: a trained store in a temp dir and a real `bentoml serve` on a free port."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loadtests.run import Service, free_port
from loadtests.run import stop_process_group as stop
from loadtests.run import wait_ready as _wait_ready

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


@dataclass
class Store:
    """A BentoML home + MLflow tracking store with trained models."""

    home: Path
    mlflow_uri: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "BENTOML_HOME": str(self.home), "MLFLOW_TRACKING_URI":
               self.mlflow_uri, "BENTOML_DO_NOT_TRACK": "true"}
        env.update(extra)
        return env


def train(root: Path, rows: int | None = None, config: Path | None = None) -> Store:
    """Run the real training CLI into a fresh store under `root`."""
    store = Store(home=root / "bentoml", mlflow_uri=f"sqlite:///{root / 'mlruns.db'}")
    cmd = [PYTHON, "-m", "training"]
    if rows:
        cmd += ["--rows", str(rows)]
    if config:
        cmd += ["--config", str(config)]
    subprocess.run(cmd, cwd=ROOT, env=store.env(), check=True, capture_output=True, timeout=900)
    return store


def run_gate(store: Store, report: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    """Run the real pytest gate against `store`, writing its report to `report`."""
    return subprocess.run(
        [PYTHON, "-m", "pytest", "gating", "-q", "-p", "no:cacheprovider", *extra],
        cwd=ROOT, env=store.env(FRAUDSERVE_GATE_REPORT=str(report), **env),
        capture_output=True, text=True, timeout=900,
    )


@dataclass
class Server:
    """A running `bentoml serve` and where to reach it."""

    url: str
    proc: subprocess.Popen
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(store: Store, workdir: Path, *, workers: int = 2, ready_timeout: float = 120,
          expect_ready: bool = True, **env: str) -> Iterator[Server]:
    """Start a real `bentoml serve` (2 API workers by default), wait for /readyz, stop after."""
    port = free_port()
    log = workdir / f"serve-{port}.log"
    full_env = store.env(**{
        "BENTOML_HOME": str(own_home(store, workdir / f"bentoml-home-{port}")),
        "BENTOML_CONFIG_OPTIONS": f"services.FraudDetection.workers={workers}",
        "FRAUDSERVE_LEDGER": str(workdir / "ledger.sqlite"), **env})
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", "service:FraudDetection", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    try:
        if expect_ready:
            wait_ready(server, ready_timeout)
        yield server
    finally:
        stop(proc)


def own_home(store: Store, home: Path) -> Path:
    """A BENTOML_HOME of the server's own that sees the store's models.

    Every `bentoml serve` empties BENTOML_HOME/prometheus_multiproc_dir when it starts, so two
    servers on one home erase each other's metrics (a counter read back as 0 mid-test).
    """
    home.mkdir(parents=True, exist_ok=True)
    link = home / "models"
    if not link.exists():
        link.symlink_to((store.home / "models").resolve(), target_is_directory=True)
    return home


def wait_ready(server: Server, timeout: float) -> None:
    """Poll /readyz until 200 (the load driver's loop); raises ServiceFailed with the log."""
    _wait_ready(Service(url=server.url, proc=server.proc, log=server.log), timeout)


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def prometheus_binary() -> str:
    """Debian's prometheus: a failure in CI (sysdeps installs it), a skip elsewhere."""
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing in CI: `make sysdeps` installs it")
        pytest.skip("prometheus not installed: `make sysdeps` installs it")
    return path


CHROMIUM = Path("/usr/bin/chromium")  # the distribution's; Playwright's download is unreachable
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-quic", "--disable-sync"]


def need_chromium() -> None:
    """Debian's chromium: a failure in CI (sysdeps installs it), a skip elsewhere."""
    if CHROMIUM.exists():
        return
    msg = f"{CHROMIUM} is missing: `make sysdeps` installs it (tools/install_browser.sh)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(msg)


def random_transactions(n: int, seed: int, users: int, prefix: str) -> list[dict[str, Any]]:
    """`n` valid /predict bodies with uniform random features, `users` distinct user ids."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [{"user_id": f"{prefix}{i % users}", "amount": round(float(rng.uniform(1, 900)), 2),
             "hour": int(rng.integers(0, 24)), "merchant_risk": float(rng.uniform(0, 1)),
             "card_age_days": float(rng.integers(1, 2000)),
             "distance_km": float(rng.uniform(0, 800)),
             "num_recent_txns": int(rng.integers(0, 15)),
             "is_international": int(rng.integers(0, 2))} for i in range(n)]

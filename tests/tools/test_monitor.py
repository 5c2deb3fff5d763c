"""`make monitor` (tools/monitor.py): Prometheus and the MLflow UI answer, pointed at a real
service and the real MLflow store; SIGINT stops both process groups and leaves nothing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from helpers import PYTHON, ROOT, Server, Store, free_port, stop

MONITOR = ROOT / "tools" / "monitor.py"
READY_TIMEOUT_S = 180


@pytest.fixture(autouse=True)
def _need_prometheus() -> None:
    if shutil.which("prometheus") is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing in CI: `make sysdeps` installs it")
        pytest.skip("prometheus not installed: `make sysdeps` installs it")


def group_members(pgid: int) -> list[int]:
    """PIDs whose process group is `pgid` (from /proc; zombies count as running)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            out.append(int(stat.parent.name))
    return out


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def monitor(tmp: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen]:
    with open(tmp / "monitor.out", "wb") as out:
        proc = subprocess.Popen([PYTHON, str(MONITOR), "--state-dir", str(tmp / "state"),
                                 "--scrape-interval", "1s", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def wait_for(tmp: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = (tmp / "monitor.out").read_text()
        if re.search(pattern, text, re.S):
            return text
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in monitor output:\n{text}")


@pytest.mark.service
@pytest.mark.alerts
def test_monitor_starts_both_and_sigint_leaves_nothing(server: Server, trained_store: Store,
                                                       tmp_path: Path) -> None:
    prom_port, mlflow_port = free_port(), free_port()
    service_port = server.url.rsplit(":", 1)[1]
    with monitor(tmp_path, trained_store.env(), "--port", service_port,
                 "--prometheus-port", str(prom_port), "--mlflow-port", str(mlflow_port)) as proc:
        text = wait_for(tmp_path, "prometheus ready.*mlflow ready|mlflow ready.*prometheus ready",
                        READY_TIMEOUT_S)
        pids = {name: int(pid) for name, pid in re.findall(r"(prometheus|mlflow) pid (\d+)",
                                                           text)}
        assert set(pids) == {"prometheus", "mlflow"}, text
        # Prometheus scrapes this service, with the alert rules loaded.
        deadline, target = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            active = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/targets",
                                  timeout=5).json()["data"]["activeTargets"]
            target = active[0] if active else {}
            if target.get("health") == "up":
                break
            time.sleep(1)
        assert target.get("scrapeUrl") == f"{server.url}/metrics" and target["health"] == "up"
        rules = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=5).json()
        assert "NoPredictions" in {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        # The MLflow UI serves the store the models were trained into.
        found = requests.post(f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/experiments/search",
                              json={"max_results": 50}, timeout=10).json()
        assert any(e["name"] != "Default" for e in found.get("experiments", [])), found
        assert group_members(pids["mlflow"]) and group_members(pids["prometheus"])

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, (tmp_path / "monitor.out").read_text()
    assert "stopped" in (tmp_path / "monitor.out").read_text()
    for name, pid in pids.items():
        assert group_members(pid) == [], f"{name} left processes behind"
    assert not listening(prom_port) and not listening(mlflow_port)


@pytest.mark.alerts
def test_when_one_fails_the_other_is_stopped(tmp_path: Path) -> None:
    """Prometheus cannot bind its port: monitor exits 1 and takes the MLflow UI down too."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}"}
        with monitor(tmp_path, env, "--port", str(free_port()), "--prometheus-port", str(port),
                     "--mlflow-port", str(free_port())) as proc:
            assert proc.wait(timeout=60) == 1
    text = (tmp_path / "monitor.out").read_text()
    assert "prometheus exited" in text, text
    mlflow_pid = int(re.search(r"mlflow pid (\d+)", text).group(1))  # type: ignore[union-attr]
    assert group_members(mlflow_pid) == []

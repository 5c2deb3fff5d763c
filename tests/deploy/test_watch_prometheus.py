"""The post-deploy watch decides on a real Prometheus scraping a real `bentoml serve`.

A healthy service under light traffic passes and nothing is rolled back; a service that refuses
every request (started without a gate report, so its models are not gated: every /predict is a
503) fails and the watch issues exactly `kubectl rollout undo deployment/fraudserve -n <ns>`.
kubectl is the one part that cannot run here: a recording fake is first on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from helpers import ROOT, Server, Store, free_port, serve
from prom import prometheus, wait_for_series

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service, pytest.mark.alerts, pytest.mark.slow]

NAMESPACE = "fraudserve-test"
WATCH = ["--minutes", "0.35", "--interval", "1", "--hold", "3", "--match", 'job="fraudserve"']


@pytest.fixture
def fake_kubectl(tmp_path: Path) -> Path:
    """A `kubectl` that records its arguments, one JSON list per call, and succeeds."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    calls = tmp_path / "kubectl-calls.jsonl"
    script = bindir / "kubectl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(calls)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print('deployment.apps/fraudserve rolled back')\n")
    script.chmod(0o755)
    return calls


def recorded(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


@contextmanager
def traffic(server: Server, per_second: float = 10) -> Iterator[dict[int, int]]:
    """POST /predict at a light, steady rate in the background; yields status counts."""
    stop = threading.Event()
    statuses: dict[int, int] = {}

    def loop() -> None:
        i = 0
        while not stop.wait(1 / per_second):
            i += 1
            body = {**EXAMPLE_TRANSACTION, "user_id": f"watch-user-{i % 200}"}
            try:
                code = requests.post(f"{server.url}/predict", json=body, timeout=10).status_code
            except requests.RequestException:
                code = 0
            statuses[code] = statuses.get(code, 0) + 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(timeout=15)


def run_watch(prom_url: str, calls: Path, report: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{calls.parent / 'fakebin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run(
        [sys.executable, "-m", "deploy.watch", "--prometheus", prom_url, "--namespace",
         NAMESPACE, "--report", str(report), *WATCH, *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_healthy_service_passes_and_nothing_is_rolled_back(
        server: Server, fake_kubectl: Path, tmp_path: Path) -> None:
    with traffic(server) as statuses, prometheus([server.url.removeprefix("http://")],
                                                 tmp_path) as prom_url:
        wait_for_series(prom_url, "fraud_predictions_total")
        out = run_watch(prom_url, fake_kubectl, tmp_path / "report.json")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert statuses.get(200, 0) > 0 and set(statuses) == {200}, statuses
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outcome"] == "pass" and report["breached"] is None, report
    assert report["answered"] == report["polls"] >= 10, report
    assert recorded(fake_kubectl) == [], "the watch rolled back a healthy service"


def test_healthy_service_seen_through_a_matcher_that_selects_nothing_fails(
        server: Server, fake_kubectl: Path, tmp_path: Path) -> None:
    """The scope is real: narrowed to series that do not exist, the decision counter is
    absent, which NoPredictions treats as a dead service."""
    with traffic(server), prometheus([server.url.removeprefix("http://")],
                                     tmp_path) as prom_url:
        wait_for_series(prom_url, "fraud_predictions_total")
        out = run_watch(prom_url, fake_kubectl, tmp_path / "report.json",
                        "--match", 'job="not-fraudserve"', "--no-undo")
    assert out.returncode == 1, (out.stdout + out.stderr)[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["breached"] == "NoPredictions", report
    assert recorded(fake_kubectl) == []  # --no-undo


def test_service_refusing_every_request_fails_and_is_rolled_back(
        trained_store: Store, fake_kubectl: Path, tmp_path: Path) -> None:
    with serve(trained_store, tmp_path, expect_ready=False,
               FRAUDSERVE_GATE_REPORT=str(tmp_path / "no-such-gate-report.json")) as bad:
        wait_until_answering(bad)
        with traffic(bad) as statuses, prometheus([bad.url.removeprefix("http://")],
                                                  tmp_path) as prom_url:
            wait_for_series(prom_url, "fraud_predictions_total")
            started = time.monotonic()
            out = run_watch(prom_url, fake_kubectl, tmp_path / "report.json")
            took = time.monotonic() - started
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-4000:]
    assert statuses and 200 not in statuses, statuses
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outcome"] == "fail", report
    assert report["breached"] == "NoPredictions", report
    assert took < 0.35 * 60, "the watch should stop at the first breach, not the window's end"
    assert recorded(fake_kubectl) == [
        ["rollout", "undo", "deployment/fraudserve", "-n", NAMESPACE]]
    assert report["undo"]["returncode"] == 0, report


def test_prometheus_unreachable_is_inconclusive_and_rolls_nothing_back(
        fake_kubectl: Path, tmp_path: Path) -> None:
    out = run_watch(f"http://127.0.0.1:{free_port()}", fake_kubectl, tmp_path / "r.json",
                    "--minutes", "0.05")
    assert out.returncode == 2, (out.stdout + out.stderr)[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"] == "inconclusive" and report["answered"] == 0, report
    assert recorded(fake_kubectl) == []


def wait_until_answering(server: Server, timeout: float = 120) -> None:
    """Wait for the not-ready service to answer HTTP at all (its /readyz says 503)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.logs()[-3000:]
        try:
            if requests.get(f"{server.url}/readyz", timeout=2).status_code == 503:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError("the service did not answer within the timeout")

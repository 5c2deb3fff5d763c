"""The post-deploy watch decides on a real Prometheus scraping real `bentoml serve`s.

Each served instance is scraped with the labels a PodMonitor would copy from its pod
(namespace, pod_template_hash), so "new" and "old" pods are real servers side by side:

- new pods that answer 5xx (a serve started without a gate report: every /predict is a 503)
  beside healthy old ones FAIL and the watch runs exactly `kubectl rollout undo`; the same two
  with the roles swapped pass: the watch judges the pods it is told are new;
- healthy pods with no traffic are inconclusive and nothing is undone;
- a challenger rollback stored in the ledger before the deploy does not fail it; the same
  rollback judged from a time before it happened does;
- Prometheus unreachable is inconclusive;
- the Argo Rollouts AnalysisTemplate's queries run on the same Prometheus: the metric and label
  names they use exist, and they tell the bad canary from the good one.

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
from k8s import one, render
from prom import prometheus, wait_for_series

from deploy.render import OVERLAYS
from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service, pytest.mark.alerts, pytest.mark.slow]

NAMESPACE = "fraudserve-test"
NEW, OLD = "5d8f7c9b4", "7c6b5a493"
# Short windows for a test: 1 s scrapes, 15 s rate window, a poll a second, 3 failed polls.
# The p95 limit is loose: on a shared 2-core machine latency says little; 5xx is the subject.
WATCH = ["--minutes", "0.3", "--interval", "1", "--window", "15s", "--min-requests", "10",
         "--threshold", "3", "--max-p95", "2"]


def labels(template_hash: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "pod_template_hash": template_hash,
            "rollouts_pod_template_hash": template_hash}


def target(server: Server, template_hash: str) -> tuple[str, dict[str, str]]:
    return server.url.removeprefix("http://"), labels(template_hash)


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
def traffic(*servers: Server, per_second: float = 8) -> Iterator[dict[int, int]]:
    """POST /predict at a light, steady rate to each server in the background; yields status
    counts."""
    stop = threading.Event()
    statuses: dict[int, int] = {}

    def loop(server: Server) -> None:
        i = 0
        while not stop.wait(1 / per_second):
            i += 1
            body = {**EXAMPLE_TRANSACTION, "user_id": f"watch-user-{i % 200}"}
            try:
                code = requests.post(f"{server.url}/predict", json=body, timeout=10).status_code
            except requests.RequestException:
                code = 0
            statuses[code] = statuses.get(code, 0) + 1

    threads = [threading.Thread(target=loop, args=(s,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def run_watch(prom_url: str, calls: Path, report: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{calls.parent / 'fakebin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run(
        [sys.executable, "-m", "deploy.watch", "--prometheus", prom_url, "--namespace",
         NAMESPACE, "--new", f'pod_template_hash="{NEW}"', "--report", str(report), *WATCH,
         *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def wait_for_requests(prom_url: str, template_hash: str, n: float = 10) -> None:
    """Until the pods' scored requests over the window reach `n` (so polls have a verdict)."""
    wait_for_series(prom_url, f'sum(increase(bentoml_service_request_total{{pod_template_hash='
                              f'"{template_hash}", endpoint="/predict"}}[15s])) >= {n}', 90)


@pytest.fixture
def bad(trained_store: Store, tmp_path: Path) -> Iterator[Server]:
    """A serve whose every /predict is a 503 (started without a gate report)."""
    workdir = tmp_path / "bad"
    workdir.mkdir()
    with serve(trained_store, workdir, expect_ready=False,
               FRAUDSERVE_GATE_REPORT=str(workdir / "no-such-gate-report.json")) as srv:
        wait_until_answering(srv)
        yield srv


def test_new_pods_answering_5xx_fail_and_are_rolled_back(
        server: Server, bad: Server, fake_kubectl: Path, tmp_path: Path) -> None:
    with traffic(server, bad) as statuses, prometheus(
            [target(bad, NEW), target(server, OLD)], tmp_path) as prom_url:
        wait_for_requests(prom_url, NEW)
        wait_for_requests(prom_url, OLD)
        out = run_watch(prom_url, fake_kubectl, tmp_path / "report.json")
        analysis = analysis_results(prom_url)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-4000:]
    assert statuses.get(503, 0) > 0 and statuses.get(200, 0) > 0, statuses
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outcome"] == "fail" and report["breached"] == "http_5xx_share", report
    share = {o["name"]: o for o in report["last"]}["http_5xx_share"]
    assert share["new"] > 0.9 and share["old"] == 0, share  # new pods all 5xx, old pods none
    # It stopped at the third failed poll, not at the window's end.
    assert report["counts"]["fail"] == 3 and report["polls"] < 18, report["counts"]
    assert recorded(fake_kubectl) == [
        ["rollout", "undo", "deployment/fraudserve", "-n", NAMESPACE]]
    assert report["undo"]["returncode"] == 0, report
    # Argo Rollouts' analysis on the same series: the canary's 5xx share breaks its condition,
    # and its p95 query answers (the good stable pods have /predict traffic).
    assert analysis["http-5xx-share"] and analysis["http-5xx-share"][0] > 0.05, analysis


def test_the_watch_judges_the_pods_it_is_told_are_new(
        server: Server, bad: Server, fake_kubectl: Path, tmp_path: Path) -> None:
    """The same two servers, roles swapped: healthy new pods beside failing old ones pass."""
    with traffic(server, bad), prometheus([target(server, NEW), target(bad, OLD)],
                                          tmp_path) as prom_url:
        wait_for_requests(prom_url, NEW)
        out = run_watch(prom_url, fake_kubectl, tmp_path / "report.json")
        analysis = analysis_results(prom_url)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outcome"] == "pass" and report["counts"]["ok"] >= report["polls"] / 2, report
    share = {o["name"]: o for o in report["last"]}["http_5xx_share"]
    assert share["new"] == 0 and share["old"] > 0.9, share
    assert recorded(fake_kubectl) == []
    assert analysis["http-5xx-share"] == [0.0], analysis
    assert len(analysis["predict-p95-seconds"]) == 1, analysis  # the canary had traffic


def test_healthy_pods_without_traffic_are_inconclusive_never_undone(
        server: Server, fake_kubectl: Path, tmp_path: Path) -> None:
    with prometheus([target(server, NEW)], tmp_path) as prom_url:
        wait_for_series(prom_url, f'fraud_predictions_total{{pod_template_hash="{NEW}"}}')
        out = run_watch(prom_url, fake_kubectl, tmp_path / "report.json")
    assert out.returncode == 2, (out.stdout + out.stderr)[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outcome"] == "inconclusive", report
    assert report["counts"]["fail"] == 0 and report["counts"]["inconclusive"] >= 1, report
    assert {o["name"]: o["state"] for o in report["last"]}["traffic"] == "inconclusive"
    assert recorded(fake_kubectl) == []


def test_a_rollback_stored_before_the_deploy_is_not_its_fault(
        trained_store: Store, gate_report: Path, fake_kubectl: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "rolled-back"
    workdir.mkdir()
    with serve(trained_store, workdir, FRAUDSERVE_GATE_REPORT=str(gate_report)) as srv, \
            traffic(srv), prometheus([target(srv, NEW)], tmp_path) as prom_url:
        wait_for_requests(prom_url, NEW)
        before_rollback = time.time()
        answer = requests.post(f"{srv.url}/admin/rollback", timeout=30)
        assert answer.status_code == 200, answer.text
        wait_for_series(prom_url, f'fraud_ab_rollback_active{{pod_template_hash="{NEW}"}} == 1',
                        90)
        # The deploy starts now (--since defaults to the watch's start): the rollback was
        # already in the ledger, so ChallengerRolledBack is not held against the release.
        out = run_watch(prom_url, fake_kubectl, tmp_path / "report.json")
        # Judged from a time before the rollback, the same rollback is the release's doing.
        later = run_watch(prom_url, fake_kubectl, tmp_path / "later.json",
                          "--since", f"{before_rollback - 5:.3f}", "--no-undo")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exempt"] == ["ChallengerRolledBack"] and report["outcome"] == "pass", report
    assert {o["name"]: o["state"] for o in report["last"]}["ChallengerRolledBack"] == "ok"
    assert later.returncode == 1, (later.stdout + later.stderr)[-4000:]
    assert json.loads((tmp_path / "later.json").read_text())["breached"] == \
        "ChallengerRolledBack"
    assert recorded(fake_kubectl) == []  # the first passed, the second ran with --no-undo


def test_prometheus_unreachable_is_inconclusive_and_rolls_nothing_back(
        fake_kubectl: Path, tmp_path: Path) -> None:
    out = run_watch(f"http://127.0.0.1:{free_port()}", fake_kubectl, tmp_path / "r.json",
                    "--minutes", "0.05")
    assert out.returncode == 2, (out.stdout + out.stderr)[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"] == "inconclusive" and report["answered"] == 0, report
    assert recorded(fake_kubectl) == []


def analysis_results(prom_url: str) -> dict[str, list[float]]:
    """Each AnalysisTemplate metric's query, its arguments filled in as Argo Rollouts would
    (canary = NEW, stable = OLD), evaluated now: the values of the result vector."""
    template = one(render(OVERLAYS / "rollouts"), "AnalysisTemplate")["spec"]
    args = {"namespace": NAMESPACE, "canary-hash": NEW, "stable-hash": OLD}
    out = {}
    for metric in template["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        for name, value in args.items():
            query = query.replace(f"{{{{args.{name}}}}}", value)
        body = requests.get(f"{prom_url}/api/v1/query", params={"query": query},
                            timeout=10).json()
        assert body["status"] == "success", (metric["name"], body)
        out[metric["name"]] = [float(s["value"][1]) for s in body["data"]["result"]]
    return out


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


def test_the_deploy_script_passes_flags_the_watch_has() -> None:
    """The flags tools/deploy.sh passes exist (a renamed flag would fail only in a deploy)."""
    text = (ROOT / "tools" / "deploy.sh").read_text()
    assert "bash tools/deploy.sh" in (ROOT / ".github" / "workflows" / "delivery.yml").read_text()
    out = subprocess.run([sys.executable, "-m", "deploy.watch", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    for flag in ("--new-pods", "--since", "--threshold", "--interval", "--minutes"):
        assert flag in out.stdout and flag in text, flag

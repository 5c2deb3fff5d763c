"""`make loadtest`: serve fraudserve, run locust headless against it, report, stop the service.

    python -m loadtests.run                      # 50 users, 60 s, the realistic mix
    python -m loadtests.run --profile reference --users 10 --run-time 30s
    python -m loadtests.run --url http://127.0.0.1:3000   # a service that is already running

The service is `bentoml serve service:FraudDetection` on a free 127.0.0.1 port, with the
caller's environment (BENTOML_HOME, FRAUDSERVE_GATE_REPORT, ...). Its ledger is
FRAUDSERVE_LEDGER when set, else a fresh one in the report directory, so load-test decisions
never land in the real experiment's ledger. Reports (locust HTML + CSV, the service log) go
to reports/loadtest/<timestamp>/. Exit status: 0 when every request succeeded, 1 when any
failed, 2 when the service could not be started.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PROFILES = {
    "mix": ROOT / "loadtests" / "locustfile.py",
    "reference": ROOT / "loadtests" / "reference_locustfile.py",
}
SERVICE = "service:FraudDetection"


class ServiceFailed(RuntimeError):
    """The service exited or did not become ready; the message says why."""


# -- the service under test --------------------------------------------------------------------


@dataclass
class Service:
    """A running fraudserve: where to reach it and, when we started it, its process."""

    url: str
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def start_service(log: Path, env: dict[str, str] | None = None, *, cwd: Path = ROOT,
                  service: str = SERVICE) -> Service:
    """`bentoml serve` on a free 127.0.0.1 port, in its own process group (stopped as one)."""
    port = free_port()
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", service, "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Service(url=f"http://127.0.0.1:{port}", proc=proc, log=log)


def _log_tail(service: Service, chars: int = 3000) -> str:
    if service.log and service.log.exists():
        return service.log.read_text(errors="replace")[-chars:]
    return ""


def wait_ready(service: Service, timeout: float = 180) -> None:
    """Poll /readyz until 200; raise ServiceFailed with the reason (and log tail) otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc is not None and service.proc.poll() is not None:
            raise ServiceFailed(f"bentoml serve exited with {service.proc.returncode}:\n"
                                f"{_log_tail(service)}")
        try:
            if requests.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    reason = ""
    with suppress(requests.RequestException, ValueError, AttributeError):
        # the service says why it refuses (e.g. models not gated)
        reason = requests.get(f"{service.url}/health", timeout=2).json().get("reason", "")
    raise ServiceFailed(f"{service.url} not ready after {timeout:.0f}s"
                        + (f": {reason}" if reason else "") + f"\n{_log_tail(service)}")


def stop_service(service: Service, timeout: float = 20) -> None:
    """SIGTERM the service's process group (by its PID), SIGKILL it if it lingers."""
    if service.proc is not None:
        stop_process_group(service.proc, timeout)


def stop_process_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM a process started with start_new_session (by its PID), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def serving(log: Path, env: dict[str, str] | None = None, *, url: str | None = None,
            ready_timeout: float = 180, cwd: Path = ROOT) -> Iterator[Service]:
    """The service at `url` as is, or one started here (and stopped on exit)."""
    if url:
        service = Service(url=url.rstrip("/"))
        wait_ready(service, ready_timeout)
        yield service
        return
    service = start_service(log, env, cwd=cwd)
    try:
        wait_ready(service, ready_timeout)
        yield service
    finally:
        stop_service(service)


def ledger_env(report_dir: Path) -> dict[str, str]:
    """The caller's FRAUDSERVE_LEDGER, else a fresh ledger inside the report directory."""
    if os.environ.get("FRAUDSERVE_LEDGER"):
        return {}
    return {"FRAUDSERVE_LEDGER": str(report_dir / "ledger.sqlite")}


# -- locust ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointStats:
    """One row of locust's *_stats.csv (times in ms)."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    p50: float | None
    p95: float | None
    p99: float | None


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


def read_stats(path: Path) -> list[EndpointStats]:
    """Rows of a locust stats CSV; the last one is the aggregate."""
    rows: list[EndpointStats] = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append(EndpointStats(
                method=row.get("Type", ""), name=row["Name"],
                requests=int(row["Request Count"]), failures=int(row["Failure Count"]),
                rps=_num(row.get("Requests/s")) or 0.0, p50=_num(row.get("50%")),
                p95=_num(row.get("95%")), p99=_num(row.get("99%"))))
    return rows


def format_stats(rows: list[EndpointStats]) -> str:
    """The summary table printed at the end of a run."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    width = max([len(f"{r.method} {r.name}".strip()) for r in rows] + [8])
    lines = [f"{'endpoint':<{width}}  {'requests':>8}  {'failed':>6}  {'req/s':>7}  "
             f"{'p50 ms':>6}  {'p95 ms':>6}  {'p99 ms':>6}"]
    for r in rows:
        label = f"{r.method} {r.name}".strip()
        lines.append(f"{label:<{width}}  {r.requests:>8}  {r.failures:>6}  {r.rps:>7.1f}  "
                     f"{ms(r.p50):>6}  {ms(r.p95):>6}  {ms(r.p99):>6}")
    return "\n".join(lines)


def run_locust(url: str, out: Path, *, profile: str, users: int, spawn_rate: float,
               run_time: str) -> int:
    """Run locust headless against `url`; HTML and CSV reports land in `out`."""
    cmd = [sys.executable, "-m", "locust", "-f", str(PROFILES[profile]), "--headless",
           "--host", url, "--users", str(users), "--spawn-rate", str(spawn_rate),
           "--run-time", run_time, "--stop-timeout", "10", "--only-summary",
           "--html", str(out / "report.html"), "--csv", str(out / "locust")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    with open(out / "locust.log", "wb") as log:
        return subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              check=False).returncode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Serve fraudserve on a free 127.0.0.1 port, run locust headless against "
                    "it, write HTML + CSV reports under reports/loadtest/<timestamp>/, stop "
                    "the service and print a summary. Exits 1 if any request failed.")
    p.add_argument("--profile", choices=sorted(PROFILES), default="mix",
                   help="mix: realistic (held-out rows, bulk, delayed feedback, A/B reads); "
                        "reference: the reference implementation's profile (default: mix)")
    p.add_argument("--users", type=int, default=50, help="concurrent locust users (default 50)")
    p.add_argument("--spawn-rate", type=float, default=10,
                   help="users started per second (default 10)")
    p.add_argument("--run-time", default="60s",
                   help="how long to run, locust syntax: 30s, 2m, 1h (default 60s)")
    p.add_argument("--url", help="target an already running service instead of starting one")
    p.add_argument("--reports", type=Path, default=ROOT / "reports" / "loadtest",
                   help="where the <timestamp>/ report directory goes")
    p.add_argument("--ready-timeout", type=float, default=180,
                   help="seconds to wait for /readyz (default 180)")
    args = p.parse_args(argv)
    if args.users < 1 or args.spawn_rate <= 0:
        p.error("--users must be >= 1 and --spawn-rate > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.reports / timestamp()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with serving(out / "service.log", ledger_env(out), url=args.url,
                     ready_timeout=args.ready_timeout) as service:
            print(f"loadtest: {args.profile} profile, {args.users} users, {args.run_time} "
                  f"against {service.url}", flush=True)
            rc = run_locust(service.url, out, profile=args.profile, users=args.users,
                            spawn_rate=args.spawn_rate, run_time=args.run_time)
    except ServiceFailed as exc:
        print(f"loadtest: the service did not start: {exc}", file=sys.stderr)
        return 2
    stats_csv = out / "locust_stats.csv"
    if not stats_csv.exists():
        print(f"loadtest: locust wrote no statistics (exit {rc}); see {out / 'locust.log'}",
              file=sys.stderr)
        return 1
    rows = read_stats(stats_csv)
    print(format_stats(rows))
    for line in (out / "locust.log").read_text(errors="replace").splitlines():
        if line.startswith("stickiness:"):
            print(line)
    total = rows[-1]
    print(f"report: {out / 'report.html'}")
    if total.failures or rc != 0:
        print(f"loadtest: FAILED: {total.failures} of {total.requests} requests failed "
              f"(locust exit {rc}); see {out / 'locust_failures.csv'}", file=sys.stderr)
        return 1
    print(f"loadtest: OK: {total.requests} requests, 0 failed, {total.rps:.1f} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

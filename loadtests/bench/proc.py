"""The serve tree seen from outside: its processes by role, their CPU, memory and start-up.

`bentoml serve service:FraudDetection` is an arbiter (the `bentoml serve` process, with
circus) and its workers: the API workers (FraudDetection) and the router (ABRouter). The bench
reads their CPU seconds around each phase, samples the tree's RSS while a phase runs, and
records each role's RSS and PSS right after ready and at the end (PSS divides shared pages
among the processes mapping them, so its sum is the tree's real footprint; RSS counts shared
pages once per process, so its sum is an upper bound).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from loadtests.run import Service, start_service, stop_service, wait_ready

ROLES = ("arbiter", "api", "router")
MB = 2**20


def is_serve(cmdline: Sequence[str]) -> bool:
    """True for a `bentoml serve` (arbiter) or BentoML worker command line."""
    if "_bentoml_impl.worker.service" in cmdline:
        return True
    return any(Path(a).name == "bentoml" and cmdline[i + 1: i + 2] == ["serve"]
               for i, a in enumerate(cmdline))


def role(cmdline: Sequence[str]) -> str:
    """Which part of `bentoml serve` a process is: router, api (worker) or arbiter."""
    if "_bentoml_impl.worker.service" not in cmdline:
        return "arbiter"
    return "router" if "ABRouter" in cmdline else "api"


def server_pid(url: str) -> int | None:
    """PID of the `bentoml serve` arbiter behind `url`'s port on this machine, if any."""
    import psutil

    port = urlparse(url).port
    host = urlparse(url).hostname
    if port is None or host not in ("127.0.0.1", "localhost", "::1"):
        return None
    try:
        pids = {c.pid for c in psutil.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    except (psutil.AccessDenied, PermissionError):
        return None
    for pid in sorted(pids):
        try:
            proc = psutil.Process(pid)
            while (parent := proc.parent()) is not None and is_serve(parent.cmdline()):
                proc = parent  # climb from a worker to the `bentoml serve` arbiter
            return proc.pid
        except psutil.NoSuchProcess:
            continue
    return None


def process_tree(pid: int | None) -> list[Any]:
    import psutil

    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int | None) -> int | None:
    """Resident memory summed over the serve process tree (shared pages count per process)."""
    import psutil

    total = 0
    for proc in process_tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total or None


def tree_cpu(pid: int | None) -> dict[str, float]:
    """CPU seconds (user + system) so far of the serve tree's processes, by role."""
    import psutil

    out: dict[str, float] = Counter()
    for proc in process_tree(pid):
        try:
            t = proc.cpu_times()
            out[role(proc.cmdline())] += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


@dataclass
class TreeMemory:
    """Resident memory of the serve tree at one moment, in MB: total and per role."""

    rss_mb: float
    pss_mb: float | None  # None when /proc/<pid>/smaps_rollup could not be read
    by_role: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> rss/pss/procs

    def role_text(self) -> str:
        """'arbiter 80 + api 2x 300 + router 400' (RSS MB), in ROLES order."""
        parts = []
        for name in ROLES:
            r = self.by_role.get(name)
            if r:
                n = int(r["procs"])
                parts.append(f"{name} {'' if n == 1 else f'{n}x '}{r['rss_mb'] / n:,.0f}")
        return " + ".join(parts)


def tree_memory(pid: int | None) -> TreeMemory | None:
    """RSS and PSS of every process of the tree, summed and per role."""
    import psutil

    by_role: dict[str, dict[str, float]] = {}
    pss_known = True
    for proc in process_tree(pid):
        try:
            name = role(proc.cmdline())
            rss = proc.memory_info().rss
            try:
                pss: float | None = proc.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                pss = None
        except psutil.NoSuchProcess:
            continue
        r = by_role.setdefault(name, {"rss_mb": 0.0, "pss_mb": 0.0, "procs": 0})
        r["rss_mb"] += rss / MB
        r["procs"] += 1
        if pss is None:
            pss_known = False
        else:
            r["pss_mb"] += pss / MB
    if not by_role:
        return None
    return TreeMemory(rss_mb=sum(r["rss_mb"] for r in by_role.values()),
                      pss_mb=sum(r["pss_mb"] for r in by_role.values()) if pss_known else None,
                      by_role=by_role)


class RssSampler:
    """Peak tree RSS, sampled every 0.25 s in a thread while a phase runs."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid) or 0)
            self._stop.wait(0.25)

    def __enter__(self) -> RssSampler:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


def _poll_ready(service: Service, timeout: float, every: float = 0.1) -> None:
    """Poll /readyz every `every` s until 200; leave the verdict to wait_ready otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc is not None and service.proc.poll() is not None:
            return
        try:
            if requests.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(every)


@contextmanager
def started(log: Path, env: dict[str, str], *, cwd: Path,
            ready_timeout: float) -> Iterator[tuple[Service, float]]:
    """A service started here, with its time to ready (spawn to /readyz 200, +-0.1 s).

    Stopped (its process group, by PID) on exit. Raises ServiceFailed with the reason when
    it does not become ready.
    """
    t0 = time.monotonic()
    service = start_service(log, env, cwd=cwd)
    try:
        _poll_ready(service, ready_timeout)
        ready_s = time.monotonic() - t0
        wait_ready(service, timeout=1.0)  # raises with the service's reason if not ready
        yield service, ready_s
    finally:
        stop_service(service)


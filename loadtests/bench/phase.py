"""One measured phase: what it ran, and what it measured around the load.

A phase is one endpoint under one load (closed loop: N clients; open loop: R requests/s
offered) against one running service. Around the load it reads the rows per router call (the
service's `fraud_router_batch_size` histogram, `_sum`/`_count` diffed), the CPU seconds of
the serve tree by role, of this client and of everything else on the machine, and the tree's
peak RSS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from loadtests.bench.load import LoadResult, closed_loop, mixed_loop, open_loop, percentile
from loadtests.bench.proc import RssSampler, TreeMemory, server_pid, tree_cpu
from loadtests.run import Service

BATCH_METRIC = "fraud_router_batch_size"


@dataclass
class Settings:
    """The run's shape: offered loads, phase length, closed-loop clients, bulk body."""

    loads: list[float]
    seconds: float
    clients: int
    batch_rows: int
    batch_clients: int
    warmup: float
    batch_clients_many: int = 16  # the heavy bulk phase's /predict_batch clients
    mixed_clients: int = 40       # /predict clients beside batch_clients bulk ones (mixed)
    rounds: int = 1               # rounds of load for the RSS-after-rounds figure
    pairs: int = 0                # alternating (/predict, /noop) closed-loop pairs per service
    pair_seconds: float = 5.0     # each loop of a pair (loadtests/bench/report_pairs.py)


PAIRED = "paired"  # a closed loop of an alternating pair (loadtests/bench/report_pairs.py)
PAIRED_OPEN = "paired-open"  # the open loop at the top load after each pair (its p99)
RAW = "in-process predict_proba"  # a bulk pair's other half: the models alone, no server


@dataclass
class Phase:
    """What one phase measured (times in ms, rates per second)."""

    config: str              # "default" / "adaptive batching" / "shadow on" / "postgres"
    endpoint: str            # /predict, /noop, /predict_batch
    mode: str                # closed / open / mixed (bulk and single clients at once) /
                             # paired (a closed loop of an alternating pair)
    offered: float | None    # open loop: requests/s fired
    clients: int | None      # closed loop: concurrent clients
    rows_per_request: int
    seconds: float
    ok: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    throughput: float = 0.0  # successful requests/s
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    send_lag_p99: float | None = None  # open loop: how late the client fired (client health)
    batch_mean: float | None = None    # rows per router call
    server_cpu_ms_per_req: float | None = None
    api_cpu_ms_per_req: float | None = None     # the FraudDetection workers
    router_cpu_ms_per_req: float | None = None  # the ABRouter worker
    client_cpu_pct: float | None = None
    others_cpu_pct: float | None = None  # everything else on the machine, % of all cores
    rss_peak_mb: float | None = None

    @property
    def single(self) -> bool:
        """A phase of its own (a closed or open loop), not part of a pair or the mixed phase."""
        return self.mode in ("closed", "open")

    @property
    def served(self) -> bool:
        """Requests to the service (not a bulk pair's in-process half)."""
        return self.endpoint != RAW

    @property
    def rows_per_s(self) -> float:
        return self.throughput * self.rows_per_request

    @property
    def key(self) -> str:
        load = f"@{self.offered:g}/s" if self.offered else f"x{self.clients}"
        return f"{self.config} {self.endpoint} {self.mode} {load}"


def parse_histogram(text: str, name: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram in exposition text, summed over label sets."""
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        base = metric.split("{", 1)[0]
        if base == f"{name}_sum":
            total += float(value)
        elif base == f"{name}_count":
            count += float(value)
    return total, count


def mean_batch(before: tuple[float, float] | None,
               after: tuple[float, float] | None) -> float | None:
    """Mean rows per router call between two (sum, count) snapshots; None if unknown/idle."""
    if before is None or after is None:
        return None
    calls = after[1] - before[1]
    return (after[0] - before[0]) / calls if calls > 0 else None


def batch_snapshot(url: str) -> tuple[float, float] | None:
    try:
        text = requests.get(f"{url}/metrics", timeout=10).text
    except requests.RequestException:
        return None
    snap = parse_histogram(text, BATCH_METRIC)
    return snap if snap[1] > 0 or BATCH_METRIC in text else None


@contextmanager
def accounting(service: Service, phase: Phase) -> Iterator[None]:
    """Fill the phase's batch size, CPU split and peak RSS from around the measured block."""
    import psutil

    pid = service.pid or server_pid(service.url)
    me = psutil.Process()
    batch0 = batch_snapshot(service.url)
    machine0, server0, client0 = psutil.cpu_times(), tree_cpu(pid), me.cpu_times()
    wall0 = time.monotonic()
    with RssSampler(pid) as rss:
        yield
    wall = time.monotonic() - wall0
    machine1, server1, client1 = psutil.cpu_times(), tree_cpu(pid), me.cpu_times()
    phase.batch_mean = mean_batch(batch0, batch_snapshot(service.url))
    cores = psutil.cpu_count() or 1
    busy = ((machine1.user + machine1.system + getattr(machine1, "nice", 0))
            - (machine0.user + machine0.system + getattr(machine0, "nice", 0)))
    client = (client1.user + client1.system) - (client0.user + client0.system)
    used = {k: server1.get(k, 0.0) - server0.get(k, 0.0) for k in server1}
    server = sum(used.values())
    phase.client_cpu_pct = 100 * client / wall
    phase.others_cpu_pct = max(0.0, 100 * (busy - client - server) / (wall * cores))
    done = phase.ok + phase.failed
    if pid and done:
        phase.server_cpu_ms_per_req = 1000 * server / done
        phase.api_cpu_ms_per_req = 1000 * used.get("api", 0.0) / done
        phase.router_cpu_ms_per_req = 1000 * used.get("router", 0.0) / done
    if pid and rss.peak:
        phase.rss_peak_mb = rss.peak / 2**20


def _fill(phase: Phase, raw: LoadResult) -> None:
    """The phase's outcomes, rate and latency percentiles from what the load collected."""
    phase.ok, phase.failed = raw.ok, sum(raw.failures.values())
    phase.failures = dict(raw.failures)
    phase.throughput = raw.ok / raw.elapsed if raw.elapsed else 0.0
    ms = [x * 1000 for x in raw.latencies]
    phase.p50, phase.p95, phase.p99 = (percentile(ms, q) for q in (50, 95, 99))
    phase.send_lag_p99 = percentile([x * 1000 for x in raw.lags], 99)


def run_phase(service: Service, phase: Phase, bodies: Sequence[bytes]) -> Phase:
    """Run the phase's load against `service` and fill in what it measured."""
    url = f"{service.url}{phase.endpoint}"
    with accounting(service, phase):
        if phase.mode in ("closed", PAIRED):
            raw = asyncio.run(closed_loop(url, bodies, phase.clients or 1, phase.seconds))
        else:
            raw = asyncio.run(open_loop(url, bodies, phase.offered or 1, phase.seconds))
        phase.ok, phase.failed = raw.ok, sum(raw.failures.values())
    _fill(phase, raw)
    return phase


def run_mixed(service: Service, bulk: Phase, single: Phase, bulk_bodies: Sequence[bytes],
              single_bodies: Sequence[bytes]) -> tuple[Phase, Phase]:
    """Bulk and single closed loops at once (mode "mixed"): each phase its own outcomes and
    latencies; the machine's figures (rows per router call, client and others CPU, peak RSS)
    are the pair's, copied to both. Server CPU per request is left out: the two kinds of
    request share it and one figure per kind cannot be told apart."""
    both = Phase(bulk.config, f"{bulk.endpoint}+{single.endpoint}", "mixed", None,
                 (bulk.clients or 1) + (single.clients or 1), 1, bulk.seconds)
    with accounting(service, both):
        raws = asyncio.run(mixed_loop(
            (f"{service.url}{bulk.endpoint}", bulk_bodies, bulk.clients or 1),
            (f"{service.url}{single.endpoint}", single_bodies, single.clients or 1),
            bulk.seconds))
        both.ok = sum(r.ok for r in raws)
        both.failed = sum(sum(r.failures.values()) for r in raws)
    for phase, raw in zip((bulk, single), raws, strict=True):
        _fill(phase, raw)
        phase.batch_mean, phase.client_cpu_pct = both.batch_mean, both.client_cpu_pct
        phase.others_cpu_pct, phase.rss_peak_mb = both.others_cpu_pct, both.rss_peak_mb
    return bulk, single


@dataclass
class ServiceRun:
    """One service of the run: its time to ready and its memory after ready and at the end."""

    config: str
    url: str
    started_here: bool            # False with --url: no start-up time, maybe no process tree
    ready_s: float | None         # spawn to /readyz 200
    memory_ready: TreeMemory | None = None
    memory_end: TreeMemory | None = None
    # after each round of load (the service's phases, then the same load again): round,
    # rss_mb, pss_mb, ok, failed; empty where the run did not repeat its load
    rounds: list[dict[str, float | None]] = field(default_factory=list)

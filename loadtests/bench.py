"""`make bench`: fraudserve's performance, every figure beside a baseline measured in the same run.

    python -m loadtests.bench                 # ~4 min: two services, 14 phases of 15 s
    python -m loadtests.bench --quick         # ~2 min smoke with 4 s phases
    python -m loadtests.bench --url http://127.0.0.1:3000   # a running service, as it is

What runs, against `bentoml serve service:FraudDetection` on a free 127.0.0.1 port:
  1. in process: both arms' models from the BentoML store, raw predict_proba rows/s on the
     same rows /predict_batch gets (the ceiling for bulk scoring) and 1-row latency;
  2. service with adaptive batching ON (the shipped configuration):
     /predict closed loop (N clients, each sends when its last answer came: peak req/s),
     /predict open loop at each offered load (requests fired on a fixed schedule whatever
     the answers; latency counted from the scheduled send time, so a stalled server cannot
     hide its queue: no coordinated omission), the same two for /noop (the framework's
     floor: same validation, no scoring), and /predict_batch closed loop (rows/s);
  3. the same service with FRAUDSERVE_BATCHING=0 (every /predict row goes to the router's
     non-batched method): /predict closed and open loop again;
  4. the same service with FRAUDSERVE_SHADOW=1 (both models score every row; the other's
     score is stored beside the decision): /predict closed and open loop, against 2.
Per phase it reads the rows per router call (the service's fraud_router_batch_size histogram,
diffed), the CPU the server tree, this client and everything else on the machine used, and the
server tree's peak resident memory. The table and a per-phase detail go to stdout and to
reports/bench/<timestamp>/bench.{json,md}. Targets are printed beside the figures, not
asserted: on a shared machine a figure is a ratio to the baseline beside it more than an
absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import requests

from loadtests.run import ROOT, Service, ServiceFailed, serving, timestamp
from loadtests.samples import load_samples, user_ids

REFERENCE_RPS = 32.5  # the reference implementation's load-test throughput
TARGETS = {
    "peak_rps": 350.0,          # >= 10x the reference
    "p99_ms_at_100": 50.0,      # p99 at 100 req/s offered
    "noop_overhead": 0.25,      # our logic at most 25% slower (cost per request) than no-op
    "batch_rows_per_s": 20_000.0,
    "shadow_peak_cost": 0.15,   # shadow scoring costs at most 15% of /predict peak
    "shadow_p99_ms": 5.0,       # ... and adds at most this to p99 at 100 req/s
}
JSON_HEADERS = {"Content-Type": "application/json"}
BATCH_METRIC = "fraud_router_batch_size"
CLIENT_TIMEOUT_S = 30.0  # the service's own traffic timeout


# -- pure helpers (unit-tested) -----------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation) or None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def schedule(rate: float, duration: float) -> list[float]:
    """Open-loop send offsets (s from start): a fixed interval, whatever the answers do."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    return [i / rate for i in range(max(1, round(rate * duration)))]


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


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def parse_loads(text: str) -> list[float]:
    """'50,100,200' -> [50.0, 100.0, 200.0]; every load must be a positive number."""
    try:
        loads = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not loads or any(x <= 0 for x in loads):
        raise argparse.ArgumentTypeError("loads must be positive numbers, e.g. 50,100,200")
    return loads


# -- one measured phase ---------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase measured (times in ms, rates per second)."""

    config: str              # "batching on" / "batching off"
    endpoint: str            # /predict, /noop, /predict_batch
    mode: str                # closed / open
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
    def rows_per_s(self) -> float:
        return self.throughput * self.rows_per_request

    @property
    def key(self) -> str:
        load = f"@{self.offered:g}/s" if self.mode == "open" else f"x{self.clients}"
        return f"{self.config} {self.endpoint} {self.mode} {load}"


@dataclass
class _Raw:
    """Latencies (s) and outcomes collected by a load generator."""

    latencies: list[float] = field(default_factory=list)  # of successful requests
    lags: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    elapsed: float = 0.0


async def _post(session: Any, url: str, body: bytes) -> str | None:
    """POST; None on a 2xx answer, else a short failure label."""
    import aiohttp

    try:
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            await resp.read()
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


def _session(limit: int) -> Any:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S))


async def closed_loop(url: str, bodies: Sequence[bytes], clients: int,
                      duration: float) -> _Raw:
    """`clients` loops that each send the next request as soon as the last one answered."""
    raw = _Raw()
    loop = asyncio.get_running_loop()
    async with _session(clients) as session:
        start = loop.time()
        end = start + duration

        async def client(index: int) -> None:
            i = index
            while loop.time() < end:
                sent = loop.time()
                failure = await _post(session, url, bodies[i % len(bodies)])
                if failure:
                    raw.failures[failure] += 1
                else:
                    raw.latencies.append(loop.time() - sent)
                    raw.ok += 1
                i += clients

        await asyncio.gather(*(client(i) for i in range(clients)))
        raw.elapsed = loop.time() - start
    return raw


async def open_loop(url: str, bodies: Sequence[bytes], rate: float, duration: float,
                    max_connections: int = 512) -> _Raw:
    """Fire requests on a fixed schedule regardless of answers; latency from scheduled time."""
    raw = _Raw()
    loop = asyncio.get_running_loop()
    offsets = schedule(rate, duration)
    async with _session(max_connections) as session:
        start = loop.time() + 0.05
        pending: set[asyncio.Task[None]] = set()

        async def fire(i: int, due: float) -> None:
            raw.lags.append(loop.time() - due)
            failure = await _post(session, url, bodies[i % len(bodies)])
            if failure:
                raw.failures[failure] += 1
            else:  # from the scheduled time: includes any client-side queueing
                raw.latencies.append(loop.time() - due)
                raw.ok += 1

        for i, offset in enumerate(offsets):
            due = start + offset
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(fire(i, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        raw.elapsed = max(loop.time() - start, offsets[-1] + 1 / rate)
    return raw


# -- the server's side: metrics, CPU, memory ------------------------------------------------------


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


def is_serve(cmdline: Sequence[str]) -> bool:
    """True for a `bentoml serve` (arbiter) or BentoML worker command line."""
    if "_bentoml_impl.worker.service" in cmdline:
        return True
    return any(Path(a).name == "bentoml" and cmdline[i + 1: i + 2] == ["serve"]
               for i, a in enumerate(cmdline))


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


def role(cmdline: Sequence[str]) -> str:
    """Which part of `bentoml serve` a process is: router, api (worker) or arbiter."""
    if "_bentoml_impl.worker.service" not in cmdline:
        return "arbiter"
    return "router" if "ABRouter" in cmdline else "api"


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


def run_phase(service: Service, phase: Phase, bodies: Sequence[bytes]) -> Phase:
    url = f"{service.url}{phase.endpoint}"
    with accounting(service, phase):
        if phase.mode == "closed":
            raw = asyncio.run(closed_loop(url, bodies, phase.clients or 1, phase.seconds))
        else:
            raw = asyncio.run(open_loop(url, bodies, phase.offered or 1, phase.seconds))
        phase.ok, phase.failed = raw.ok, sum(raw.failures.values())
    phase.failures = dict(raw.failures)
    phase.throughput = raw.ok / raw.elapsed if raw.elapsed else 0.0
    ms = [x * 1000 for x in raw.latencies]
    phase.p50, phase.p95, phase.p99 = (percentile(ms, q) for q in (50, 95, 99))
    phase.send_lag_p99 = percentile([x * 1000 for x in raw.lags], 99)
    return phase


# -- bodies and the in-process model baseline -----------------------------------------------------


def predict_bodies(n: int = 2_000, seed: int = 1) -> list[bytes]:
    """Pre-encoded /predict bodies: held-out rows (3% suspicious) for the stable user ids."""
    rng = random.Random(seed)
    samples, users = load_samples(), user_ids()
    return [json.dumps(samples.pick(rng, rng.random() < 0.03).body(rng.choice(users))).encode()
            for _ in range(n)]


def batch_bodies(rows: int, n: int = 16, seed: int = 2) -> list[bytes]:
    rng = random.Random(seed)
    samples, users = load_samples(), user_ids()
    return [json.dumps({"transactions": [
        samples.pick(rng, rng.random() < 0.03).body(rng.choice(users)) for _ in range(rows)]}
    ).encode() for _ in range(n)]


@dataclass
class RawModel:
    """In-process predict_proba figures of the two arms' models, as the router runs them."""

    rows_per_s: float
    rows: int
    one_row_ms: dict[str, float]


def raw_model_baseline(body: bytes, seconds: float) -> RawModel | None:
    """Score the rows of one /predict_batch body as the router does (each arm its rows).

    Single-threaded (BLAS and OpenMP limited to 1): the figure is per core, and stays
    meaningful when other processes hold the other core.
    """
    try:
        import bentoml
        from threadpoolctl import threadpool_limits

        from fraud.assignment import assign
        from fraud.config import load_ab_config
        from fraud.models import resolve_arms
        from fraud.schema import ARMS, Transaction, to_matrix
    except ImportError as exc:  # pragma: no cover - the venv has them
        print(f"bench: no raw model baseline ({exc})", file=sys.stderr)
        return None
    cfg = load_ab_config()
    try:
        arms = resolve_arms(cfg)
    except Exception as exc:
        print(f"bench: no raw model baseline: {exc}", file=sys.stderr)
        return None
    models = [bentoml.sklearn.load_model(arms[a].tag) for a in ARMS]
    txs = [Transaction(**t) for t in json.loads(body)["transactions"]]
    arm_of = np.array([ARMS.index(assign(t.user_id, cfg.salt, cfg.challenger_share))
                       for t in txs])
    x = to_matrix(txs)

    def score() -> None:
        out = np.empty(len(x))
        for index, model in enumerate(models):
            mask = arm_of == index
            if mask.any():
                out[mask] = model.predict_proba(x[mask])[:, 1]

    one_row: dict[str, float] = {}
    with threadpool_limits(limits=1):  # one core, as the router should run (OMP_NUM_THREADS=1)
        score()  # warm
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            score()
            done += len(x)
        rate = done / (time.perf_counter() - start)
        for arm, model in zip(ARMS, models, strict=True):
            times = []
            for i in range(100):
                t0 = time.perf_counter()
                model.predict_proba(x[i % len(x): i % len(x) + 1])
                times.append(time.perf_counter() - t0)
            one_row[arm] = 1000 * float(np.median(times))
    return RawModel(rows_per_s=rate, rows=len(x), one_row_ms=one_row)


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Settings:
    loads: list[float]
    seconds: float
    clients: int
    batch_rows: int
    batch_clients: int
    warmup: float


def bench_ab_config(out: Path) -> Path:
    """configs/ab.yaml (or FRAUDSERVE_AB_CONFIG) with guardrail rollbacks off, for the bench.

    An overload phase breaches the p95-latency guardrail by design; a rollback would then
    send every later phase to model_a only, and the phases would no longer compare.
    """
    import yaml

    from fraud.config import CONFIG_DIR

    source = Path(os.environ.get("FRAUDSERVE_AB_CONFIG") or CONFIG_DIR / "ab.yaml")
    data = yaml.safe_load(source.read_text()) or {}
    data.setdefault("guardrails", {})["enabled"] = False
    path = out / "ab-bench.yaml"
    path.write_text(f"# {source} with guardrails.enabled: false (python -m loadtests.bench)\n"
                    + yaml.safe_dump(data, sort_keys=False))
    return path


def has_noop(url: str, body: bytes) -> bool:
    try:
        return requests.post(f"{url}/noop", data=body, headers=JSON_HEADERS,
                             timeout=10).status_code == 200
    except requests.RequestException:
        return False


def rolled_back(url: str) -> bool | None:
    try:
        return bool(requests.get(f"{url}/ab-stats", timeout=10).json()["experiment"]
                    ["rolled_back"])
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def bench_service(service: Service, config: str, s: Settings, full: bool,
                  log: Callable[[str], None], notes: list[str]) -> list[Phase]:
    """All phases against one running service; `full` adds /noop and /predict_batch."""
    bodies = predict_bodies()
    phases: list[Phase] = []

    def run(endpoint: str, mode: str, *, offered: float | None = None,
            clients: int | None = None, body_set: Sequence[bytes] = bodies,
            rows: int = 1, seconds: float = s.seconds, keep: bool = True) -> Phase:
        phase = Phase(config, endpoint, mode, offered, clients, rows, seconds)
        run_phase(service, phase, body_set)
        if keep:
            phases.append(phase)
            log(f"  {phase.key:<44} {phase.throughput * rows:>9.1f} {'rows' if rows > 1 else 'req'}"
                f"/s  p50 {_ms(phase.p50)}  p99 {_ms(phase.p99)}  batch {_num(phase.batch_mean)}"
                f"  failed {phase.failed}")
        time.sleep(0.5)
        return phase

    run("/predict", "closed", clients=s.clients, seconds=s.warmup, keep=False)
    run("/predict", "closed", clients=s.clients)
    for load in s.loads:
        run("/predict", "open", offered=load)
    if full:
        if has_noop(service.url, bodies[0]):
            run("/noop", "closed", clients=s.clients, seconds=s.warmup, keep=False)
            run("/noop", "closed", clients=s.clients)
            for load in s.loads:
                run("/noop", "open", offered=load)
        else:
            notes.append("the service has no /noop endpoint: the framework floor is missing "
                         "(start it with FRAUDSERVE_NOOP=1, which turns POST /noop on)")
        rows = batch_bodies(s.batch_rows)
        run("/predict_batch", "closed", clients=s.batch_clients, body_set=rows,
            rows=s.batch_rows)
    if rolled_back(service.url):
        notes.append(f"{config}: a guardrail rolled the challenger back during the run: "
                     "later phases scored every row with model_a")
    return phases


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _latencies(p: Phase) -> str:
    """p50 / p95 / p99 of the successful requests, and how many failed (if any)."""
    text = f"{_num(p.p50)} / {_num(p.p95)} / {_num(p.p99)}"
    return text + (f" ({p.failed} failed)" if p.failed else "")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def find(phases: list[Phase], config: str, endpoint: str, mode: str,
         offered: float | None = None) -> Phase | None:
    for p in phases:
        if (p.config, p.endpoint, p.mode) == (config, endpoint, mode) and (
                mode == "closed" or p.offered == offered):
            return p
    return None


def summary_rows(phases: list[Phase], raw: RawModel | None, s: Settings,
                 on: str, off: str | None, shadow: str | None = None) -> list[dict[str, str]]:
    """The one table: figure | measured | baseline (same run) | ratio | target."""
    rows: list[dict[str, str]] = []

    def add(figure: str, value: str, baseline: str, r: float | None, target: str = "",
            met: bool | None = None) -> None:
        rows.append({"figure": figure, "measured": value, "baseline": baseline,
                     "ratio": "-" if r is None else f"{r:.2f}x",
                     "target": target + ("" if met is None else (" ok" if met else " MISSED"))})

    peak = find(phases, on, "/predict", "closed")
    noop = find(phases, on, "/noop", "closed")
    peak_off = find(phases, off, "/predict", "closed") if off else None
    if peak:
        add(f"/predict peak req/s ({s.clients} clients, closed loop)",
            _num(peak.throughput), f"/noop {_num(noop.throughput) if noop else 'n/a'}",
            ratio(peak.throughput, noop.throughput if noop else None),
            f">= {TARGETS['peak_rps']:.0f} (10x reference {REFERENCE_RPS})",
            peak.throughput >= TARGETS["peak_rps"])
        add("/predict peak vs the reference's load-test req/s", _num(peak.throughput),
            f"reference {REFERENCE_RPS}", ratio(peak.throughput, REFERENCE_RPS), ">= 10x",
            peak.throughput >= 10 * REFERENCE_RPS)
    if peak and noop and peak.throughput:
        slower = noop.throughput / peak.throughput - 1
        add("our logic vs no-op: extra cost per request (peak)", _pct(slower),
            f"/noop {_num(noop.throughput)} req/s", ratio(noop.throughput, peak.throughput),
            f"<= {_pct(TARGETS['noop_overhead'])} slower", slower <= TARGETS["noop_overhead"])
        add("server CPU ms per request at peak (API workers + router)",
            f"{_num(peak.server_cpu_ms_per_req, 2)} ({_num(peak.api_cpu_ms_per_req, 2)} + "
            f"{_num(peak.router_cpu_ms_per_req, 2)})",
            f"/noop {_num(noop.server_cpu_ms_per_req, 2)}",
            ratio(peak.server_cpu_ms_per_req, noop.server_cpu_ms_per_req))
    if peak_off and peak:
        add("/predict peak req/s, batching OFF", _num(peak_off.throughput),
            f"batching on {_num(peak.throughput)}", ratio(peak_off.throughput, peak.throughput))
    peak_shadow = find(phases, shadow, "/predict", "closed") if shadow else None
    if peak_shadow and peak:
        r = ratio(peak_shadow.throughput, peak.throughput)
        add("/predict peak req/s, shadow ON (both models score every row)",
            _num(peak_shadow.throughput), f"shadow off {_num(peak.throughput)}", r,
            f">= {1 - TARGETS['shadow_peak_cost']:.2f}x",
            r is not None and r >= 1 - TARGETS["shadow_peak_cost"])
    for load in s.loads:
        p = find(phases, on, "/predict", "open", load)
        if not p:
            continue
        n = find(phases, on, "/noop", "open", load)
        target, met = "", None
        if load == 100:
            target, met = f"p99 <= {TARGETS['p99_ms_at_100']:.0f} ms, 0 failed", (
                p.p99 is not None and p.p99 <= TARGETS["p99_ms_at_100"] and not p.failed)
        add(f"/predict p50/p95/p99 ms at {load:g} req/s offered (open loop)",
            _latencies(p),
            f"/noop p99 {_num(n.p99) if n else 'n/a'}", ratio(p.p99, n.p99 if n else None),
            target, met)
        q = find(phases, off, "/predict", "open", load) if off else None
        if q:
            add(f"/predict p50/p95/p99 ms at {load:g} req/s, batching OFF", _latencies(q),
                f"batching on p99 {_num(p.p99)}", ratio(q.p99, p.p99))
        h = find(phases, shadow, "/predict", "open", load) if shadow else None
        if h:
            extra = None if h.p99 is None or p.p99 is None else h.p99 - p.p99
            add(f"/predict p50/p95/p99 ms at {load:g} req/s, shadow ON", _latencies(h),
                f"shadow off p99 {_num(p.p99)}", ratio(h.p99, p.p99),
                f"p99 within {TARGETS['shadow_p99_ms']:.0f} ms" if load == 100 else "",
                (extra is not None and extra <= TARGETS["shadow_p99_ms"]) if load == 100
                else None)
    bulk = find(phases, on, "/predict_batch", "closed")
    if bulk:
        add(f"/predict_batch rows/s ({s.batch_rows} rows, {s.batch_clients} clients)",
            _num(bulk.rows_per_s, 0),
            f"raw predict_proba {_num(raw.rows_per_s, 0) if raw else 'n/a'}",
            ratio(bulk.rows_per_s, raw.rows_per_s if raw else None),
            f">= {TARGETS['batch_rows_per_s']:,.0f}",
            bulk.rows_per_s >= TARGETS["batch_rows_per_s"])
    if raw:
        add("raw predict_proba, 1 row (ms): model_a / model_b",
            " / ".join(f"{v:.2f}" for v in raw.one_row_ms.values()), "in process", None)
    formed = [p for p in phases if p.endpoint == "/predict" and p.config == on]
    if formed:
        add("rows per router call, /predict batching on (peak; loads)",
            "; ".join(_num(p.batch_mean) for p in formed),
            "batching off " + "; ".join(_num(p.batch_mean) for p in phases
                                        if p.endpoint == "/predict" and p.config == off), None)
    for config in (on, off, shadow):
        mem = [p.rss_peak_mb for p in phases if p.config == config and p.rss_peak_mb]
        if mem:
            add(f"server RSS peak MB (serve tree), {config}", _num(max(mem), 0), "", None)
    for config in (on, off, shadow):
        cp = [p for p in phases if p.config == config]
        if cp:
            failed = sum(p.failed for p in cp)
            add(f"failed requests, {config}", str(failed),
                f"of {sum(p.ok + p.failed for p in cp):,}", None, "0", failed == 0)
    return rows


def format_table(rows: list[dict[str, str]], columns: Sequence[str]) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    line = "  ".join(f"{c:<{widths[c]}}" for c in columns)
    out = [line, "  ".join("-" * widths[c] for c in columns)]
    out += ["  ".join(f"{r[c]:<{widths[c]}}" for c in columns) for r in rows]
    return "\n".join(out)


def markdown_table(rows: list[dict[str, str]], columns: Sequence[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(r[c].replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(out)


def detail_rows(phases: list[Phase]) -> list[dict[str, str]]:
    return [{
        "phase": p.key, "ok": str(p.ok), "failed": str(p.failed),
        "req/s": _num(p.throughput), "rows/s": _num(p.rows_per_s, 0),
        "p50": _num(p.p50), "p95": _num(p.p95), "p99": _num(p.p99),
        "send lag p99": _num(p.send_lag_p99), "rows/call": _num(p.batch_mean),
        "srv CPU ms/req": _num(p.server_cpu_ms_per_req, 2),
        "api / router": f"{_num(p.api_cpu_ms_per_req, 2)} / {_num(p.router_cpu_ms_per_req, 2)}",
        "client CPU %": _num(p.client_cpu_pct, 0), "others CPU %": _num(p.others_cpu_pct, 0),
        "RSS MB": _num(p.rss_peak_mb, 0),
    } for p in phases]


SUMMARY_COLUMNS = ("figure", "measured", "baseline", "ratio", "target")
DETAIL_COLUMNS = ("phase", "ok", "failed", "req/s", "rows/s", "p50", "p95", "p99",
                  "send lag p99", "rows/call", "srv CPU ms/req", "api / router", "client CPU %",
                  "others CPU %", "RSS MB")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.bench",
        description="The performance benchmark: /predict peak and open-loop latency with "
                    "adaptive batching on and off, a no-op endpoint as the framework's floor, "
                    "/predict_batch rows/s against in-process predict_proba. Prints one table "
                    "and writes it to reports/bench/<timestamp>/bench.{json,md}.")
    p.add_argument("--quick", action="store_true",
                   help="short phases (4 s) for a smoke run; figures are noisier")
    p.add_argument("--loads", type=parse_loads, default=[50.0, 100.0, 200.0],
                   help="open-loop offered loads in requests/s (default 50,100,200)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per phase (default 15, --quick 4)")
    p.add_argument("--clients", type=int, default=50,
                   help="concurrent clients of the closed-loop phases (default 50)")
    p.add_argument("--batch-rows", type=int, default=500,
                   help="rows per /predict_batch request (default 500)")
    p.add_argument("--batch-clients", type=int, default=8,
                   help="concurrent /predict_batch clients (default 8: keep-alive connections "
                        "stick to one API worker, fewer may leave a worker idle)")
    p.add_argument("--url", help="bench a running service as it is (no batching-off part "
                                 "unless --url-off is given too)")
    p.add_argument("--url-off", help="with --url: a second running service started with "
                                     "FRAUDSERVE_BATCHING=0")
    p.add_argument("--service-dir", type=Path, default=ROOT,
                   help="directory holding the service.py to serve (default: the project)")
    p.add_argument("--reports", type=Path, default=ROOT / "reports" / "bench",
                   help="where the <timestamp>/ directory goes")
    p.add_argument("--keep-guardrails", action="store_true",
                   help="leave guardrail rollbacks on (default: off for the bench, so an "
                        "overload phase cannot change the model mix of the later phases)")
    p.add_argument("--ready-timeout", type=float, default=180)
    p.add_argument("--no-shadow", action="store_true",
                   help="skip the shadow-scoring service (FRAUDSERVE_SHADOW=1)")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 4.0 if args.quick else 15.0
    if args.duration <= 0 or args.clients < 1 or args.batch_clients < 1:
        p.error("--duration, --clients and --batch-clients must be positive")
    if args.url_off and not args.url:
        p.error("--url-off needs --url")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.reports / timestamp()
    out.mkdir(parents=True, exist_ok=True)
    s = Settings(loads=args.loads, seconds=args.duration, clients=args.clients,
                 batch_rows=args.batch_rows, batch_clients=args.batch_clients,
                 warmup=1.0 if args.quick else 3.0)
    notes: list[str] = ["the client runs on the same machine as the server: it and any other "
                        "load share the CPUs (see 'client CPU %' and 'others CPU %')"]

    def log(msg: str) -> None:
        print(msg, flush=True)

    log(f"bench: phases of {s.seconds:g} s, loads {','.join(f'{x:g}' for x in s.loads)} "
        f"req/s, {s.clients} closed-loop clients; reports in {out}")
    log("bench: in-process predict_proba baseline ...")
    raw_body, raw_seconds = batch_bodies(s.batch_rows, n=1)[0], 1.0 if args.quick else 3.0
    raw = raw_model_baseline(raw_body, raw_seconds)
    guard_env: dict[str, str] = {}
    if not args.url and not args.keep_guardrails:
        guard_env = {"FRAUDSERVE_AB_CONFIG": str(bench_ab_config(out))}
        notes.append("guardrail rollbacks were off (reports/bench/<ts>/ab-bench.yaml): both "
                     "arms scored in every phase; --keep-guardrails to keep them")

    on, off, shadow = "batching on", "batching off", None
    plan: list[tuple[str, str | None, dict[str, str], bool]] = []
    if args.url:
        on = "as running"
        plan.append((on, args.url, {}, True))
        if args.url_off:
            plan.append((off, args.url_off, {}, False))
        else:
            off = None  # type: ignore[assignment]
    else:
        plan.append((on, None, {"FRAUDSERVE_BATCHING": "1", **guard_env}, True))
        plan.append((off, None, {"FRAUDSERVE_BATCHING": "0", **guard_env}, False))
        if not args.no_shadow:
            shadow = "shadow on"
            plan.append((shadow, None, {"FRAUDSERVE_BATCHING": "1", "FRAUDSERVE_SHADOW": "1",
                                        **guard_env}, False))

    phases: list[Phase] = []
    try:
        for config, url, env, full in plan:
            tag = config.replace(" ", "-")
            # FRAUDSERVE_NOOP=1: the service has POST /noop (off, i.e. absent, otherwise)
            env = {**env, "FRAUDSERVE_LEDGER": str(out / f"ledger-{tag}.sqlite"),
                   "FRAUDSERVE_NOOP": "1"}
            log(f"bench: {config}: {'starting the service' if url is None else url} ...")
            with serving(out / f"service-{tag}.log", env, url=url, cwd=args.service_dir,
                         ready_timeout=args.ready_timeout) as service:
                phases += bench_service(service, config, s, full, log, notes)
    except ServiceFailed as exc:
        print(f"bench: the service did not start: {exc}", file=sys.stderr)
        return 2
    log("bench: in-process predict_proba baseline again (the best of the two is kept) ...")
    again = raw_model_baseline(raw_body, raw_seconds)
    if raw is None or (again and again.rows_per_s > raw.rows_per_s):
        raw = again

    off_phases = [p for p in phases if p.config == off and p.endpoint == "/predict"]
    if off_phases and any((p.batch_mean or 1) > 1.01 for p in off_phases):
        notes.append("FRAUDSERVE_BATCHING=0 had no effect (rows per call > 1): this "
                     "service.py has no batching switch; the 'batching OFF' rows are "
                     "batching on again")
    summary = summary_rows(phases, raw, s, on, off, shadow)
    detail = detail_rows(phases)
    text = (format_table(summary, SUMMARY_COLUMNS) + "\n\nper phase (ms; rows/call from "
            f"{BATCH_METRIC}; CPU % of one core for the client, of all cores for others):\n"
            + format_table(detail, DETAIL_COLUMNS) + "\n\nnotes:\n"
            + "\n".join(f"- {n}" for n in notes))
    print("\n" + text)
    (out / "bench.json").write_text(json.dumps({
        "settings": asdict(s), "summary": summary, "phases": [
            {**asdict(p), "key": p.key, "rows_per_s": p.rows_per_s} for p in phases],
        "raw_model": asdict(raw) if raw else None, "targets": TARGETS,
        "reference_rps": REFERENCE_RPS, "notes": notes,
        "machine": {"cpus": os.cpu_count()}}, indent=2))
    (out / "bench.md").write_text(
        f"# fraudserve bench {out.name}\n\n" + markdown_table(summary, SUMMARY_COLUMNS)
        + "\n\n## Per phase\n\n" + markdown_table(detail, DETAIL_COLUMNS) + "\n\n## Notes\n\n"
        + "\n".join(f"- {n}" for n in notes) + "\n")
    print(f"\nbench: {out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

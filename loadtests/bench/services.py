"""Running the bench against services: start one (or attach to one), its phases in order.

Each service started here gets a fresh ledger in the report directory, POST /noop
(FRAUDSERVE_NOOP=1) and, unless --keep-guardrails, a copy of the A/B config with guardrail
rollbacks off; its time to ready and its memory after ready and at the end are recorded.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

from loadtests.bench.load import JSON_HEADERS, batch_bodies, predict_bodies
from loadtests.bench.phase import Phase, ServiceRun, Settings, run_phase
from loadtests.bench.proc import server_pid, started, tree_memory
from loadtests.run import Service, serving

Log = Callable[[str], None]


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


def bench_service(service: Service, config: str, s: Settings, full: bool, log: Log,
                  notes: list[str]) -> list[Phase]:
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
            p50 = "-" if phase.p50 is None else f"{phase.p50:.1f} ms"
            p99 = "-" if phase.p99 is None else f"{phase.p99:.1f} ms"
            batch = "-" if phase.batch_mean is None else f"{phase.batch_mean:.1f}"
            log(f"  {phase.key:<44} {phase.throughput * rows:>9.1f} "
                f"{'rows' if rows > 1 else 'req'}/s  p50 {p50}  p99 {p99}  batch {batch}"
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


def bench_one(config: str, url: str | None, env: dict[str, str], full: bool,
              args: argparse.Namespace, s: Settings, out: Path, log: Log,
              notes: list[str]) -> tuple[list[Phase], ServiceRun]:
    """Start (or attach to) one service, record its start-up and memory, run its phases."""
    tag = config.replace(" ", "-")
    log(f"bench: {config}: {'starting the service' if url is None else url} ...")
    if url is not None:
        with serving(out / f"service-{tag}.log", url=url, ready_timeout=args.ready_timeout) as sv:
            pid = server_pid(sv.url)
            run = ServiceRun(config, sv.url, False, None, tree_memory(pid))
            phases = bench_service(sv, config, s, full, log, notes)
            run.memory_end = tree_memory(pid)
            return phases, run
    # FRAUDSERVE_NOOP=1: the service has POST /noop (off, i.e. absent, otherwise)
    env = {**env, "FRAUDSERVE_LEDGER": str(out / f"ledger-{tag}.sqlite"), "FRAUDSERVE_NOOP": "1"}
    with started(out / f"service-{tag}.log", env, cwd=args.service_dir,
                 ready_timeout=args.ready_timeout) as (sv, ready_s):
        run = ServiceRun(config, sv.url, True, ready_s, tree_memory(sv.pid))
        mem = run.memory_ready
        log(f"  ready in {ready_s:.1f} s; RSS {mem.rss_mb:,.0f} MB ({mem.role_text()})"
            if mem else f"  ready in {ready_s:.1f} s")
        phases = bench_service(sv, config, s, full, log, notes)
        run.memory_end = tree_memory(sv.pid)
        return phases, run

"""Running the bench against services: start one (or attach to one), its phases in order.

Each service started here gets a fresh ledger (a SQLite file in the report directory or, for
the "postgres" step, a PostgreSQL server started and stopped here: loadtests/bench/pg.py),
POST /noop (FRAUDSERVE_NOOP=1) and, unless --keep-guardrails, a copy of the A/B config with
guardrail rollbacks off; its time to ready and its memory after ready and at the end (and
after each round of load: loadtests/bench/rounds.py) are recorded.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import requests

from loadtests.bench.baseline import raw_scoring
from loadtests.bench.load import JSON_HEADERS, batch_bodies, predict_bodies
from loadtests.bench.pg import PostgresFailed, postgres_ledger
from loadtests.bench.phase import (
    PAIRED,
    PAIRED_OPEN,
    RAW,
    Phase,
    ServiceRun,
    Settings,
    run_mixed,
    run_phase,
)
from loadtests.bench.plan import Step
from loadtests.bench.proc import server_pid, started, tree_cpu, tree_memory
from loadtests.bench.rounds import more_rounds
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


def bench_service(service: Service, step: Step, s: Settings, log: Log,
                  notes: list[str]) -> list[Phase]:
    """All phases of `step` against one running service, in order."""
    config = step.config
    bodies = predict_bodies()
    phases: list[Phase] = []

    def show(phase: Phase) -> None:
        rows = phase.rows_per_request
        p50 = "-" if phase.p50 is None else f"{phase.p50:.1f} ms"
        p99 = "-" if phase.p99 is None else f"{phase.p99:.1f} ms"
        batch = "-" if phase.batch_mean is None else f"{phase.batch_mean:.1f}"
        log(f"  {phase.key:<44} {phase.throughput * rows:>9.1f} "
            f"{'rows' if rows > 1 else 'req'}/s  p50 {p50}  p99 {p99}  batch {batch}"
            f"  failed {phase.failed}")

    def run(endpoint: str, mode: str, *, offered: float | None = None,
            clients: int | None = None, body_set: Sequence[bytes] = bodies,
            rows: int = 1, seconds: float = s.seconds, keep: bool = True) -> Phase:
        phase = Phase(config, endpoint, mode, offered, clients, rows, seconds)
        run_phase(service, phase, body_set)
        if keep:
            phases.append(phase)
            show(phase)
        time.sleep(0.5)
        return phase

    run("/predict", "closed", clients=s.clients, seconds=s.warmup, keep=False)
    run("/predict", "closed", clients=s.clients)
    for load in s.loads:
        run("/predict", "open", offered=load)
    if step.noop:
        if has_noop(service.url, bodies[0]):
            run("/noop", "closed", clients=s.clients, seconds=s.warmup, keep=False)
            run("/noop", "closed", clients=s.clients)
            for load in s.loads:
                run("/noop", "open", offered=load)
        else:
            notes.append("the service has no /noop endpoint: the framework floor is missing "
                         "(start it with FRAUDSERVE_NOOP=1, which turns POST /noop on)")
    if step.paired and s.pairs:
        if has_noop(service.url, bodies[0]):
            if not step.noop:  # /noop's first requests of this service: not measured
                run("/noop", "closed", clients=s.clients, seconds=s.warmup, keep=False)
            for _ in range(s.pairs):  # seconds apart: loadtests/bench/report_pairs.py
                run("/predict", PAIRED, clients=s.clients, seconds=s.pair_seconds)
                run("/noop", PAIRED, clients=s.clients, seconds=s.pair_seconds)
                if s.loads:  # and /predict's p99 at the top load, as often (its median)
                    run("/predict", PAIRED_OPEN, offered=max(s.loads), seconds=s.pair_seconds)
        elif not step.noop:
            notes.append(f"{config}: no /noop endpoint, so no alternating pairs")
    rows = batch_bodies(s.batch_rows)
    if step.bulk:
        run("/predict_batch", "closed", clients=s.batch_clients, body_set=rows,
            rows=s.batch_rows)
    if step.bulk and step.paired and s.pairs:
        bulk_pairs(run, phases, show, config, s, rows, service.pid or server_pid(service.url))
    if step.heavy:
        run("/predict_batch", "closed", clients=s.batch_clients_many, body_set=rows,
            rows=s.batch_rows)
        pair = run_mixed(service,
                         Phase(config, "/predict_batch", "mixed", None, s.batch_clients,
                               s.batch_rows, s.seconds),
                         Phase(config, "/predict", "mixed", None, s.mixed_clients, 1,
                               s.seconds), rows, bodies)
        for phase in pair:
            phases.append(phase)
            show(phase)
    if rolled_back(service.url):
        notes.append(f"{config}: a guardrail rolled the challenger back during the run: "
                     "later phases scored every row with model_a")
    return phases


def bulk_pairs(run: Callable[..., Phase], phases: list[Phase], show: Callable[[Phase], None],
               config: str, s: Settings, rows: list[bytes], pid: int | None) -> None:
    """`s.pairs` (/predict_batch closed loop, in-process predict_proba) pairs, each half
    `s.pair_seconds`: the bulk target read on ratios of figures taken seconds apart
    (loadtests/bench/report_pairs.py). The in-process half starts once the service has gone
    quiet (its leftover work would slow the baseline and flatter the ratio), and records the
    service's CPU during it as its `others_cpu_pct`."""
    raw_models = raw_scoring(rows[0])
    if raw_models is None:
        return
    for _ in range(s.pairs):
        run("/predict_batch", PAIRED, clients=s.batch_clients, body_set=rows,
            rows=s.batch_rows, seconds=s.pair_seconds)
        quiet(pid)
        before, began = sum(tree_cpu(pid).values()), time.monotonic()
        rate = raw_models.rows_per_s(s.pair_seconds)
        busy = sum(tree_cpu(pid).values()) - before
        raw = Phase(config, RAW, PAIRED, None, 1, s.batch_rows, s.pair_seconds,
                    throughput=rate / s.batch_rows,  # no requests: ok stays 0
                    others_cpu_pct=100 * busy / ((time.monotonic() - began)
                                                 * (os.cpu_count() or 1)))
        phases.append(raw)
        show(raw)


def quiet(pid: int | None, below: float = 0.05, window: float = 0.25,
          limit: float = 5.0) -> None:
    """Wait (up to `limit` s) until the serve tree uses under `below` of one core over a
    `window` (a bulk loop's last commits and answers, its WAL checkpoint)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(tree_cpu(pid).values())
        time.sleep(window)
        if sum(tree_cpu(pid).values()) - before < below * window:
            return


def _bench(service: Service, pid: int | None, run: ServiceRun, step: Step, s: Settings,
           log: Log, notes: list[str]) -> list[Phase]:
    """The step's phases, then its further rounds of load (RSS after each), then memory."""
    phases = bench_service(service, step, s, log, notes)
    if step.rounds > 1:
        bodies = {"/predict": predict_bodies(), "/predict_batch": batch_bodies(s.batch_rows)}
        run.rounds = more_rounds(service, pid, step.config, replace(s, rounds=step.rounds),
                                 phases, bodies, log)
    run.memory_end = tree_memory(pid)
    return phases


@contextmanager
def ledger(step: Step, out: Path, log: Log) -> Iterator[str]:
    """The step's fresh ledger: a SQLite file in `out`, or a PostgreSQL server started (and
    stopped) here with the ledger's schema applied, as a deploy's migrator would."""
    tag = step.config.replace(" ", "-")
    if step.ledger != "postgres":
        yield str(out / f"ledger-{tag}.sqlite")
        return
    from fraud.store.migrate import migrate

    with postgres_ledger(out / f"pg-{tag}") as url:
        try:
            done = migrate(url).summary()
        except Exception as exc:  # the schema could not be applied: no service to bench
            raise PostgresFailed(f"migrating {url}: {type(exc).__name__}: {exc}") from exc
        log(f"  PostgreSQL up ({url}): {done}")
        yield url


def bench_one(step: Step, args: argparse.Namespace, s: Settings, out: Path, log: Log,
              notes: list[str]) -> tuple[list[Phase], ServiceRun]:
    """Start (or attach to) one service, record its start-up and memory, run its phases."""
    config, url = step.config, step.url
    tag = config.replace(" ", "-")
    log(f"bench: {config}: {'starting the service' if url is None else url} ...")
    if url is not None:
        with serving(out / f"service-{tag}.log", url=url, ready_timeout=args.ready_timeout) as sv:
            pid = server_pid(sv.url)
            run = ServiceRun(config, sv.url, False, None, tree_memory(pid))
            return _bench(sv, pid, run, step, s, log, notes), run
    with ledger(step, out, log) as store:
        # FRAUDSERVE_NOOP=1: the service has POST /noop (off, i.e. absent, otherwise)
        env = {**step.env, "FRAUDSERVE_LEDGER": store, "FRAUDSERVE_NOOP": "1"}
        with started(out / f"service-{tag}.log", env, cwd=args.service_dir,
                     ready_timeout=args.ready_timeout) as (sv, ready_s):
            run = ServiceRun(config, sv.url, True, ready_s, tree_memory(sv.pid))
            mem = run.memory_ready
            log(f"  ready in {ready_s:.1f} s; RSS {mem.rss_mb:,.0f} MB ({mem.role_text()})"
                if mem else f"  ready in {ready_s:.1f} s")
            return _bench(sv, sv.pid, run, step, s, log, notes), run

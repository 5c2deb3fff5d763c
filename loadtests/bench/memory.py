"""Where the serve tree's resident memory goes over a bench-like load, process by process.

    python -m loadtests.bench.memory                 # 3 rounds of ~25 s, then 20 s idle
    python -m loadtests.bench.memory --rounds 5 --seconds 10

Starts the service as the bench does (the shipped default, fresh ledger, guardrail rollbacks off),
then runs the same load several times over: /predict closed loop, /predict at 200 req/s
offered, /predict_batch closed loop. After ready, after each round and after an idle pause it
reads every process's /proc/<pid>/smaps_rollup (RSS split into anonymous, file-backed and
shared memory) and /proc/<pid>/smaps (the main heap, the other anonymous mappings: glibc's
per-thread arenas and Python's), and its thread count. Growth that stops after the first
round is a high-water mark (allocator arenas, lazy imports, caches filling to their bound);
growth that repeats every round is a leak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.bench.load import batch_bodies, predict_bodies
from loadtests.bench.phase import Phase, run_phase
from loadtests.bench.proc import process_tree, role, started
from loadtests.bench.services import bench_ab_config
from loadtests.run import ROOT, Service, timestamp

KB_PER_MB = 1024


def smaps_rollup(pid: int) -> dict[str, float]:
    """Rss, Pss, Anonymous, file-backed and shared RSS of one process, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key] = int(value.split()[0]) / KB_PER_MB
    return {"rss": out.get("Rss", 0.0), "pss": out.get("Pss", 0.0),
            "anon": out.get("Anonymous", 0.0),
            "file": out.get("Rss", 0.0) - out.get("Anonymous", 0.0) - out.get("Shmem", 0.0),
            "shmem": out.get("Shmem", 0.0)}


def heap_split(pid: int) -> dict[str, float]:
    """Resident MB of the [heap] (brk: glibc's main arena) and of other anonymous mappings."""
    heap = other = 0.0
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else ""
        elif line.startswith("Rss:"):
            mb = int(head[1]) / KB_PER_MB
            if name == "[heap]":
                heap += mb
            elif name == "":
                other += mb
    return {"heap": heap, "anon_maps": other}


def snapshot(pid: int | None) -> list[dict[str, Any]]:
    rows = []
    for proc in process_tree(pid):
        try:
            rows.append({"pid": proc.pid, "role": role(proc.cmdline()),
                         "threads": proc.num_threads(), **smaps_rollup(proc.pid),
                         **heap_split(proc.pid)})
        except (OSError, ValueError):
            continue
    return rows


def show(label: str, rows: list[dict[str, Any]], base: dict[int, dict[str, Any]]) -> None:
    total = sum(r["rss"] for r in rows)
    grown = total - sum(b["rss"] for b in base.values()) if base else 0.0
    print(f"\n{label}: RSS {total:,.0f} MB ({grown:+,.0f} since ready), "
          f"PSS {sum(r['pss'] for r in rows):,.0f} MB")
    print(f"  {'pid':>7} {'role':<8} {'thr':>4} {'rss':>7} {'d rss':>7} {'anon':>7} "
          f"{'d anon':>7} {'heap':>6} {'anonmap':>7} {'file':>6} {'shmem':>6}")
    for r in rows:
        b = base.get(r["pid"], r)
        print(f"  {r['pid']:>7} {r['role']:<8} {r['threads']:>4} {r['rss']:>7.1f} "
              f"{r['rss'] - b['rss']:>+7.1f} {r['anon']:>7.1f} {r['anon'] - b['anon']:>+7.1f} "
              f"{r['heap']:>6.1f} {r['anon_maps']:>7.1f} {r['file']:>6.1f} {r['shmem']:>6.1f}")


def load_round(service: Service, seconds: float, predict: list[bytes],
               bulk: list[bytes]) -> str:
    done = []
    for phase, bodies in (
            (Phase("mem", "/predict", "closed", None, 50, 1, seconds), predict),
            (Phase("mem", "/predict", "open", 200.0, None, 1, seconds), predict),
            (Phase("mem", "/predict_batch", "closed", None, 8, 500, seconds), bulk)):
        run_phase(service, phase, bodies)
        done.append(f"{phase.endpoint} {phase.mode}: {phase.ok} ok, {phase.failed} failed")
    return "; ".join(done)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench.memory", description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0, help="per phase (3 phases a round)")
    p.add_argument("--idle", type=float, default=20.0, help="pause after the last round")
    p.add_argument("--service-dir", type=Path, default=ROOT)
    args = p.parse_args(argv)
    out = ROOT / "reports" / "bench-memory" / timestamp()
    out.mkdir(parents=True, exist_ok=True)
    env = {"FRAUDSERVE_BATCHING": "0", "FRAUDSERVE_NOOP": "1",
           "FRAUDSERVE_AB_CONFIG": str(bench_ab_config(out)),
           "FRAUDSERVE_LEDGER": str(out / "ledger.sqlite")}
    predict, bulk = predict_bodies(), batch_bodies(500)
    with started(out / "service.log", env, cwd=args.service_dir, ready_timeout=180) as (
            service, ready_s):
        print(f"ready in {ready_s:.1f} s ({service.url}); reports in {out}")
        base = {r["pid"]: r for r in snapshot(service.pid)}
        show("after ready", list(base.values()), {})
        for i in range(1, args.rounds + 1):
            t0 = time.monotonic()
            what = load_round(service, args.seconds, predict, bulk)
            show(f"after round {i} ({time.monotonic() - t0:.0f} s: {what})",
                 snapshot(service.pid), base)
        time.sleep(args.idle)
        show(f"after {args.idle:g} s idle", snapshot(service.pid), base)
    return 0


if __name__ == "__main__":
    sys.exit(main())

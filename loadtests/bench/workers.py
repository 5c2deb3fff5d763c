"""When does BentoML's adaptive batching pay? The same load with and without it, per number of
API workers, in one run.

    python -m loadtests.bench.workers                        # workers 1,2,4; 2 rounds
    python -m loadtests.bench.workers --workers 2,4 --rounds 3 --out docs/bench/X-workers.json

For each round, each worker count and each design (the default: coalesced batches to the
router's `score_bulk`; `adaptive`: FRAUDSERVE_BATCHING=1, coalesced batches through the
batchable `score`), a fresh service (BENTOML_CONFIG_OPTIONS sets the API workers; fresh
ledger; guardrail rollbacks off, as the bench) runs: /predict closed loop (the peak),
/predict open loop at each offered load, /noop closed loop (the framework's floor with as many
workers). Designs alternate within a round, so a noisy minute hurts both. The table gives
each figure's median over rounds and the adaptive/default ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from loadtests.bench.alternating import alternate
from loadtests.bench.driver import parse_loads
from loadtests.bench.load import predict_bodies
from loadtests.bench.phase import Phase, run_phase
from loadtests.bench.proc import started
from loadtests.bench.services import bench_ab_config
from loadtests.run import ROOT

DESIGNS = {"default": {}, "adaptive": {"FRAUDSERVE_BATCHING": "1"}}


def measure(workers: int, design: str, loads: list[float], seconds: float, out: Path,
            tag: str) -> list[dict[str, Any]]:
    """One fresh service: its phases, as rows of figures."""
    env = {**os.environ, **DESIGNS[design], "FRAUDSERVE_NOOP": "1",
           "FRAUDSERVE_LEDGER": str(out / f"ledger-{tag}.sqlite"),
           "FRAUDSERVE_AB_CONFIG": str(bench_ab_config(out)),
           "BENTOML_CONFIG_OPTIONS": f"services.FraudDetection.workers={workers}"}
    bodies = predict_bodies()
    rows: list[dict[str, Any]] = []
    with started(out / f"service-{tag}.log", env, cwd=ROOT, ready_timeout=180) as (sv, _):
        plan = [("/predict", "closed", None, 3.0, False), ("/predict", "closed", None, seconds,
                                                            True)]
        plan += [("/predict", "open", load, seconds, True) for load in loads]
        plan += [("/noop", "closed", None, seconds, True)]
        for endpoint, mode, offered, secs, keep in plan:
            phase = Phase(design, endpoint, mode, offered, 50 if mode == "closed" else None,
                          1, secs)
            run_phase(sv, phase, bodies)
            if keep:
                rows.append({"workers": workers, "design": design, "endpoint": endpoint,
                             "load": "peak" if offered is None else f"{offered:g}/s",
                             "req_s": phase.throughput, "p99_ms": phase.p99,
                             "cpu_ms": phase.server_cpu_ms_per_req,
                             "rows_per_call": phase.batch_mean, "failed": phase.failed,
                             "others_cpu_pct": phase.others_cpu_pct})
    return rows


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per workers and load, the medians of both designs and their ratio."""
    head = ("| API workers | phase | default req/s | adaptive req/s | adaptive/default | "
            "default CPU ms/req | adaptive CPU ms/req | default p99 ms | adaptive p99 ms | "
            "failed |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    keys = sorted({(r["workers"], r["endpoint"], r["load"]) for r in rows},
                  key=lambda k: (k[0], k[1] != "/predict", k[2] != "peak", k[2]))
    for workers, endpoint, load in keys:
        group = {d: [r for r in rows if (r["workers"], r["endpoint"], r["load"], r["design"])
                     == (workers, endpoint, load, d)] for d in DESIGNS}
        med = {d: {k: _median(group[d], k) for k in ("req_s", "cpu_ms", "p99_ms")}
               for d in DESIGNS}
        a, b = med["default"]["req_s"], med["adaptive"]["req_s"]
        ratio = f"{b / a:.2f}x" if a and b else "-"
        failed = sum(r["failed"] for d in DESIGNS for r in group[d])

        def f(x: float | None, p: int = 1) -> str:
            return "-" if x is None else f"{x:,.{p}f}"
        lines.append(f"| {workers} | {endpoint} {load} | {f(a)} | {f(b)} | {ratio} | "
                     f"{f(med['default']['cpu_ms'], 2)} | {f(med['adaptive']['cpu_ms'], 2)} | "
                     f"{f(med['default']['p99_ms'])} | {f(med['adaptive']['p99_ms'])} | "
                     f"{failed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench.workers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=parse_loads, default=[1.0, 2.0, 4.0])
    p.add_argument("--loads", type=parse_loads, default=[200.0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=12.0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    settings = [(int(w), design) for w in args.workers for design in DESIGNS]
    alternate("workers", argv, args.rounds, settings,
              lambda wd, out, r: measure(wd[0], wd[1], args.loads, args.duration, out,
                                         f"{wd[0]}w-{wd[1]}-{r}"),
              table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

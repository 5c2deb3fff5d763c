"""What a coalescer setting does at peak, read as /predict against /noop measured in pairs.

    python -m loadtests.bench.pairs                            # linger 0 and 8 ms; 3 rounds
    python -m loadtests.bench.pairs --linger 0,3,8 --pairs 4 --out docs/bench/X-pairs.json
    python -m loadtests.bench.pairs --open 200                 # and p99 at 200 req/s per pair
    python -m loadtests.bench.pairs --setting linger_fill --values 16,64 --open 200

On a shared VM the machine's speed drifts by +-20% within minutes, so a /predict peak and a
/noop peak measured minutes apart make a noisy ratio. Here each fresh service (its own
ledger; guardrail rollbacks off, as the bench) runs /predict and /noop closed loops (50
clients) back to back, `--pairs` times, and every pair gives a ratio of two figures taken
seconds apart: req/s (/predict over /noop) and server CPU per request. Settings alternate
within a round. The table gives, per setting, the median and range of the pairs' ratios, and
the median rows per router call; with `--open R`, each pair is followed by a /predict open
loop at R req/s and the table adds its p99's median and range. Each setting is a value of
one key of the coalescer's config (configs/ab.yaml `coalesce:`; `--setting`, linger_ms unless
told), the rest of it as shipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from fraud.config.ab import CoalesceConfig
from loadtests.bench.alternating import alternate
from loadtests.bench.driver import parse_loads
from loadtests.bench.load import predict_bodies
from loadtests.bench.phase import Phase, run_phase
from loadtests.bench.proc import started
from loadtests.bench.services import bench_ab_config
from loadtests.run import ROOT


def parse_values(text: str) -> list[float]:
    """'0,2' -> [0.0, 2.0]: a coalesce setting's values (0 included: "off")."""
    return parse_loads(text, zero=True)


def linger_config(out: Path, value: float, setting: str = "linger_ms") -> Path:
    """The bench's config (guardrail rollbacks off) with `coalesce.<setting>` set."""
    data = yaml.safe_load(bench_ab_config(out).read_text()) or {}
    data.setdefault("coalesce", {})[setting] = value
    path = out / f"ab-{setting}-{value:g}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measure(value: float, pairs: int, seconds: float, out: Path, tag: str,
            open_load: float | None = None, setting: str = "linger_ms") -> list[dict[str, Any]]:
    """One fresh service: a warm-up, then `pairs` (/predict, /noop) closed loops, each pair
    followed by a /predict open loop at `open_load` req/s when given (its p99)."""
    env = {**os.environ, "FRAUDSERVE_NOOP": "1",
           "FRAUDSERVE_LEDGER": str(out / f"ledger-{tag}.sqlite"),
           "FRAUDSERVE_AB_CONFIG": str(linger_config(out, value, setting))}
    bodies = predict_bodies()
    rows: list[dict[str, Any]] = []
    with started(out / f"service-{tag}.log", env, cwd=ROOT, ready_timeout=180) as (sv, _):
        run_phase(sv, Phase("warm-up", "/predict", "closed", None, 50, 1, 3.0), bodies)
        for n in range(pairs):
            got = {}
            for endpoint in ("/predict", "/noop"):
                phase = Phase(tag, endpoint, "closed", None, 50, 1, seconds)
                run_phase(sv, phase, bodies)
                got[endpoint] = phase
            p, q = got["/predict"], got["/noop"]
            p99, failed_open = None, 0
            if open_load:
                light = Phase(tag, "/predict", "open", open_load, None, 1, seconds)
                run_phase(sv, light, bodies)
                p99, failed_open = light.p99, light.failed
            rows.append({"open_load": open_load, "open_p99_ms": p99, setting: value,
                         "setting": setting,
                         "pair": n, "predict_req_s": p.throughput,
                         "noop_req_s": q.throughput, "predict_cpu_ms": p.server_cpu_ms_per_req,
                         "noop_cpu_ms": q.server_cpu_ms_per_req,
                         "rows_per_call": p.batch_mean, "failed": p.failed + q.failed + failed_open,
                         "others_cpu_pct": max(p.others_cpu_pct or 0, q.others_cpu_pct or 0)})
    return rows


def _ratios(rows: list[dict[str, Any]], top: str, bottom: str) -> list[float]:
    return [r[top] / r[bottom] for r in rows if r[top] and r[bottom]]


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per setting, the pairs' req/s and CPU ratios (median, min-max)."""
    setting = rows[0].get("setting", "linger_ms") if rows else "linger_ms"
    lines = [f"| {setting} | pairs | /predict / /noop req/s: median (min-max) | "
             "CPU per request / /noop's: median (min-max) | /predict req/s median | "
             "rows per router call median | open-loop p99 ms median (min-max) | failed |",
             "|---|---|---|---|---|---|---|---|"]
    for ms in sorted({r[setting] for r in rows}):
        group = [r for r in rows if r[setting] == ms]
        speed = _ratios(group, "predict_req_s", "noop_req_s")
        cpu = _ratios(group, "predict_cpu_ms", "noop_cpu_ms")
        calls = [r["rows_per_call"] for r in group if r["rows_per_call"]]
        tails = [r["open_p99_ms"] for r in group if r.get("open_p99_ms")]
        tail = "-" if not tails else (f"{statistics.median(tails):.1f} ({min(tails):.1f}-"
                                      f"{max(tails):.1f}) at {group[0]['open_load']:g}/s")

        def spread(xs: list[float]) -> str:
            if not xs:
                return "-"
            return f"{statistics.median(xs):.2f}x ({min(xs):.2f}-{max(xs):.2f})"
        lines.append(f"| {ms:g} | {len(group)} | {spread(speed)} | {spread(cpu)} | "
                     f"{statistics.median(r['predict_req_s'] for r in group):,.1f} | "
                     f"{statistics.median(calls) if calls else 0:.1f} | {tail} | "
                     f"{sum(r['failed'] for r in group)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench.pairs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", default="linger_ms",
                   help="the coalesce key to vary (default linger_ms)")
    p.add_argument("--values", "--linger", type=parse_values, default=[0.0, 8.0], dest="values",
                   help="its values to compare (default 0,8)")
    p.add_argument("--pairs", type=int, default=4, help="(/predict, /noop) pairs per service")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per loop")
    p.add_argument("--open", type=float, default=None, dest="open_load",
                   help="also a /predict open loop at this many req/s after each pair (p99)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.pairs < 1 or args.rounds < 1 or args.duration <= 0 or (args.open_load or 1) <= 0:
        p.error("--pairs, --rounds, --duration and --open must be positive")
    if args.setting not in CoalesceConfig.model_fields:
        p.error(f"--setting must be one of {', '.join(CoalesceConfig.model_fields)}")
    name = args.setting
    alternate("pairs", argv, args.rounds, args.values,
              lambda v, out, r: measure(v, args.pairs, args.duration, out, f"{name}{v:g}-{r}",
                                        args.open_load, name),
              table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

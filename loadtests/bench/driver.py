"""`make bench`: fraudserve's performance, every figure beside a baseline measured in the same run.

    python -m loadtests.bench                 # ~15 min: five services, 15 s phases
    python -m loadtests.bench --quick         # ~2 min smoke with 4 s phases
    python -m loadtests.bench --out docs/bench/2026-11-27-2core.json   # also commit the results
    python -m loadtests.bench --url http://127.0.0.1:3000   # a running service, as it is

What runs, against `bentoml serve service:FraudDetection` on a free 127.0.0.1 port:
  1. in process: both arms' models from the BentoML store, raw predict_proba rows/s on the
     same rows /predict_batch gets (the ceiling for bulk scoring) and 1-row latency
     (loadtests/bench/baseline.py);
  2. "default": the service as shipped (each API worker coalesces its requests and sends
     each batch to the router's score_bulk):
     /predict closed loop (N clients, each sends when its last answer came: peak req/s),
     /predict open loop at each offered load (requests fired on a fixed schedule whatever
     the answers; latency counted from the scheduled send time: no coordinated omission),
     the same two for /noop (the framework's floor: same validation, no scoring), --pairs
     (6) alternating (/predict, /noop) closed loops, 5 s each, whose median ratios the /noop
     targets read (this VM drifts +-20% within minutes: loadtests/bench/report_pairs.py),
     /predict_batch closed loop (rows/s) (loadtests/bench/load.py), then with 16 bulk
     clients, then bulk and 40 single /predict clients at once (the mixed phase; 0 failed
     is the target), then 2 more rounds of load, the serve tree's RSS after each of the 3
     (loadtests/bench/rounds.py: does memory level off?);
  3. the same service with FRAUDSERVE_COALESCE=0 (the design before coalescing: every
     /predict its own router call): /predict closed and open loop again, against 2;
  4. "adaptive batching": the same service with FRAUDSERVE_BATCHING=1 (coalesced batches go
     through the router's batchable `score`, merged across workers by BentoML's adaptive
     batching: would it earn its place?): the same, and its own pairs (compared with 2
     through them);
  5. the same service with FRAUDSERVE_SHADOW=1 (both models score every row; the other's
     score is stored beside the decision): /predict closed and open loop and its own pairs,
     against 2;
  6. "postgres": the service of 2 with its ledger on a PostgreSQL server the bench starts
     (and stops) in the report directory (loadtests/bench/pg.py): /predict closed and open
     loop, /predict_batch with 8 and 16 clients and the mixed phase, against the SQLite
     ledger of 2 (--no-postgres skips it).
Per phase it reads the rows per router call, the CPU the server tree (by role), this client
and everything else on the machine used, and the tree's peak RSS (loadtests/bench/phase.py);
per service its time to ready and its memory by role right after ready and at the end
(loadtests/bench/proc.py). The table (loadtests/bench/report.py: issue 14's targets, printed
beside the figures, never asserted) and the details go to stdout and reports/bench/<ts>/
bench.{json,md}, and to --out (loadtests/bench/results.py; `python -m loadtests.bench.table`
prints the table of such a file).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from loadtests.bench.baseline import raw_model_baseline
from loadtests.bench.load import batch_bodies
from loadtests.bench.pg import PostgresFailed
from loadtests.bench.phase import Phase, ServiceRun, Settings
from loadtests.bench.plan import Step, plan
from loadtests.bench.report import (
    DETAIL_COLUMNS,
    DETAIL_NOTE,
    SERVICE_COLUMNS,
    SUMMARY_COLUMNS,
    detail_rows,
    format_table,
    markdown_table,
    service_rows,
    summary_rows,
)
from loadtests.bench.results import Results, git_commit, machine
from loadtests.bench.services import bench_ab_config, bench_one
from loadtests.run import ROOT, ServiceFailed, timestamp


def parse_loads(text: str, *, zero: bool = False) -> list[float]:
    """'50,100,200' -> [50.0, 100.0, 200.0]; every load must be a positive number (`zero`:
    or 0, a setting's "off", as `python -m loadtests.bench.pairs --values 0,2`)."""
    try:
        loads = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not loads or any(x < 0 or (x == 0 and not zero) for x in loads):
        raise argparse.ArgumentTypeError("values must be numbers >= 0, e.g. 0,2" if zero else
                                         "loads must be positive numbers, e.g. 50,100,200")
    return loads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.bench",
        description="The performance benchmark: /predict peak and open-loop latency with "
                    "the shipped default and adaptive batching, shadow scoring on, a no-op "
                    "endpoint as the framework's floor, /predict_batch rows/s against "
                    "in-process "
                    "predict_proba, start-up time and memory. Prints one table and writes it "
                    "to reports/bench/<timestamp>/bench.{json,md} (and --out).")
    p.add_argument("--quick", action="store_true",
                   help="short phases (4 s) for a smoke run; figures are noisier")
    p.add_argument("--loads", type=parse_loads, default=[50.0, 100.0, 200.0],
                   help="open-loop offered loads in requests/s (default 50,100,200; the p99 "
                        "target applies at 100 and 200)")
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
    p.add_argument("--out", type=Path, default=None,
                   help="also write the results JSON here (e.g. docs/bench/<date>-2core.json, "
                        "to commit; `python -m loadtests.bench.table PATH` prints its table)")
    p.add_argument("--keep-guardrails", action="store_true",
                   help="leave guardrail rollbacks on (default: off for the bench, so an "
                        "overload phase cannot change the model mix of the later phases)")
    p.add_argument("--ready-timeout", type=float, default=180)
    p.add_argument("--no-shadow", action="store_true",
                   help="skip the shadow-scoring service (FRAUDSERVE_SHADOW=1)")
    p.add_argument("--no-postgres", action="store_true",
                   help="skip the 'postgres' service (the default with its ledger on a "
                        "PostgreSQL server the bench starts and stops)")
    p.add_argument("--batch-clients-many", type=int, default=16,
                   help="/predict_batch clients of the heavy bulk phase (default 16), run on "
                        "the default and the postgres service")
    p.add_argument("--mixed-clients", type=int, default=40,
                   help="/predict clients of the mixed phase, beside --batch-clients bulk "
                        "clients (default 40)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of load on the default service, RSS read after each (default "
                        "3: its phases, then twice /predict closed, /predict at 200 req/s and "
                        "/predict_batch closed; 1: no extra rounds)")
    p.add_argument("--pairs", type=int, default=6,
                   help="alternating (/predict, /noop) closed-loop pairs on the default, "
                        "adaptive batching and shadow services (default 6; 0: none): the "
                        "targets on /noop are read on their median (this VM drifts +-20%% "
                        "within minutes; loadtests/bench/report_pairs.py)")
    p.add_argument("--pair-seconds", type=float, default=None,
                   help="seconds per loop of a pair (default 5, --quick 2)")
    args = p.parse_args(argv)
    if args.pair_seconds is None:
        args.pair_seconds = 2.0 if args.quick else 5.0
    if args.pairs < 0 or args.pair_seconds <= 0:
        p.error("--pairs must be >= 0 and --pair-seconds positive")
    if args.duration is None:
        args.duration = 4.0 if args.quick else 15.0
    if args.duration <= 0 or min(args.clients, args.batch_clients, args.batch_clients_many,
                                  args.mixed_clients, args.rounds) < 1:
        p.error("--duration, --clients, --batch-clients, --batch-clients-many, "
                "--mixed-clients and --rounds must be positive")
    if args.url_off and not args.url:
        p.error("--url-off needs --url")
    return args


def render(results: Results, out: Path) -> tuple[str, str]:
    """The printed text and bench.md of a run."""
    summary, detail = results.summary, detail_rows(results.phases)
    services = service_rows(results.services)
    notes = "\n".join(f"- {n}" for n in results.notes)
    text = (format_table(summary, SUMMARY_COLUMNS) + "\n\nper service (start-up, memory):\n"
            + format_table(services, SERVICE_COLUMNS) + f"\n\n{DETAIL_NOTE}:\n"
            + format_table(detail, DETAIL_COLUMNS) + "\n\nnotes:\n" + notes)
    md = (f"# fraudserve bench {out.name}\n\n`{results.command}` at "
          f"{(results.git.get('commit') or '?')[:10]}\n\n"
          + markdown_table(summary, SUMMARY_COLUMNS) + "\n\n## Per service\n\n"
          + markdown_table(services, SERVICE_COLUMNS) + "\n\n## Per phase\n\n"
          + markdown_table(detail, DETAIL_COLUMNS) + "\n\n## Notes\n\n" + notes + "\n")
    return text, md


def run_steps(steps: Sequence[Step], default: str | None,
              bench: Callable[[Step], tuple[list[Phase], ServiceRun]],
              log: Callable[[str], None], notes: list[str]
              ) -> tuple[list[Phase], list[ServiceRun]]:
    """Every step's phases and service. A service that does not start (or a PostgreSQL that
    does not) is skipped with a note, so the rest of the run still compares; the default
    service not starting raises ServiceFailed: there is nothing to compare with."""
    phases: list[Phase] = []
    services: list[ServiceRun] = []
    for step in steps:
        try:
            got, run = bench(step)
        except ServiceFailed as exc:
            if step.config == default:
                raise
            log(f"bench: {step.config}: skipped, it did not start: {exc}")
            notes.append(f"{step.config}: not benched, it did not start: {exc}")
            continue
        except PostgresFailed as exc:
            log(f"bench: {step.config}: skipped: {exc}")
            notes.append(f"{step.config}: not benched: {exc}")
            continue
        phases += got
        services.append(run)
    return phases, services


def main(argv: list[str] | None = None) -> int:
    command = "python -m loadtests.bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    began = datetime.now(UTC).isoformat(timespec="seconds")
    out = args.reports / timestamp()
    out.mkdir(parents=True, exist_ok=True)
    s = Settings(loads=args.loads, seconds=args.duration, clients=args.clients,
                 batch_rows=args.batch_rows, batch_clients=args.batch_clients,
                 warmup=1.0 if args.quick else 3.0,
                 batch_clients_many=args.batch_clients_many, mixed_clients=args.mixed_clients,
                 rounds=args.rounds, pairs=args.pairs, pair_seconds=args.pair_seconds)
    notes: list[str] = ["the client runs on the same machine as the server: it and any other "
                        "load share the CPUs (see 'client CPU %' and 'others CPU %')",
                        "RSS sums count shared pages once per process (an upper bound); PSS "
                        "sums share them out (the tree's footprint)"]

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
    configs, steps = plan(args, guard_env)
    try:
        phases, services = run_steps(
            steps, configs["on"], lambda step: bench_one(step, args, s, out, log, notes),
            log, notes)
    except ServiceFailed as exc:
        print(f"bench: the service did not start: {exc}", file=sys.stderr)
        return 2
    log("bench: in-process predict_proba baseline again (the best of the two is kept) ...")
    again = raw_model_baseline(raw_body, raw_seconds)
    if raw is None or (again and again.rows_per_s > raw.rows_per_s):
        raw = again

    off = configs["off"]
    summary = summary_rows(phases, raw, s, configs["on"] or "", off, configs["shadow"],
                           services, before=configs.get("before"),
                           postgres=configs.get("postgres"))
    results = Results(settings=s, configs=configs, phases=phases, raw_model=raw,
                      services=services, summary=summary, notes=notes, command=command,
                      git=git_commit(args.service_dir), machine=machine(), started=began)
    text, md = render(results, out)
    print(f"\n{text}")
    results.write(out / "bench.json", *([args.out] if args.out else []))
    (out / "bench.md").write_text(md)
    print(f"\nbench: {out / 'bench.md'}" + (f"; results also in {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

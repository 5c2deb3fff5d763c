"""`python -m simulations.labels`: A/A and A/B experiments under real label mechanics, judged
by the service's own code, the table docs/selective-labels.md quotes.

Declined frauds are labelled only when reviewed (30%; legit declines 20%), approved ones come
back as chargebacks (90%); exploration approves a share of would-be declines with a stored
propensity. Each row runs `--runs` experiments in split mode (each arm decides for its users)
and in paired mode (shadow: the champion decides everything, the challenger scores the same
transactions), through fraud.experiment.look.judge, fraud.stats.paired.paired and
fraud.experiment.promotion.promotion_refusal at every look (simulations/label_runs.py).
Rows marked (time) draw every transaction with delays, maturity and periods
(simulations/label_traffic.py); the others draw per-user sums (simulations/cohorts.py).
Rates are of runs; "<= x" is the one-sided 95% Clopper-Pearson upper bound.

    nice -n 10 python -m simulations.labels [--runs 200] [--processes 2] [--quick]
    python -m simulations.labels --margins   # what label_bias_margin has to catch
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import zip_longest
from multiprocessing import get_context
from multiprocessing.pool import Pool

import numpy as np

from simulations import cohorts, label_traffic
from simulations.drift import clopper_pearson_upper
from simulations.label_runs import DIFFERENT, Outcome, run
from simulations.population import World
from simulations.traffic import INDEPENDENT, LabelMechanics

RAMP = ((0.0, 0.1), (30.0, 0.25), (60.0, 0.5))
AA, BETTER, WORSE, HARM = "A/A", "better", "worse", "harm"
# The split test's horizon for a challenger better by 0.05: its variance is which cards land in
# which arm (docs/selective-labels.md), so it needs many more users than the paired test.
LONG_USERS = 500_000


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # AA | BETTER | WORSE | HARM
    setup: cohorts.Setup | label_traffic.Plan
    modes: tuple[bool, ...] = (False, True)  # paired? False: split, True: paired


def rows(quick: bool = False) -> list[Row]:
    """The table's rows; `quick` shrinks every population for tests."""
    k = 0.1 if quick else 1.0
    aa = World(users=int(20_000 * k))
    big = World(users=int(20_000 * k), txns_per_user=200.0)
    def c(**kw: object) -> cohorts.Setup:
        return cohorts.Setup(**{"looks": 12, **kw})  # type: ignore[arg-type]

    plan = label_traffic.Plan
    return [
        Row("A/A, independent labels", AA, c(world=aa, labels=INDEPENDENT)),
        Row("A/A, decision-dependent labels", AA, c(world=aa)),
        Row("A/A, decision-dependent, exploration 1%", AA, c(world=aa, exploration=0.01)),
        Row("A/A ramp 0.1 -> 0.25 -> 0.5, exploration 1% (time)", AA,
            plan(world=aa, shares=RAMP, decisions=int(200_000 * k), exploration=0.01,
                 looks=15)),
        Row("better by 0.05 recall, exploration 1%", BETTER,
            c(world=replace(big, recall_b=0.75), exploration=0.01)),
        Row(f"better by 0.05 recall, exploration 1%, {int(LONG_USERS * k):,} users", BETTER,
            c(world=replace(big, users=int(LONG_USERS * k), recall_b=0.75), exploration=0.01,
              looks=20), modes=(False,)),
        Row("worse by 0.10 recall, exploration 1%", WORSE,
            c(world=replace(big, recall_b=0.60), exploration=0.01)),
        Row("worse by 0.10 recall, no exploration", WORSE,
            c(world=replace(big, recall_b=0.60))),
        Row("3x legit flags, 100k decisions (time)", HARM,
            plan(world=replace(aa, fp_multiplier=3.0), decisions=int(100_000 * max(k, 0.5)),
                 looks=20)),
    ]


def _inputs(setup: cohorts.Setup | label_traffic.Plan, paired: bool,
            seed: int) -> Iterator[cohorts.LookInputs]:
    if isinstance(setup, label_traffic.Plan):
        if paired and setup.shares != RAMP:
            setup = replace(setup, shares=((0.0, 0.0),))  # pure shadow: the champion decides
        return label_traffic.looks(replace(setup, shadow=paired), seed)
    return cohorts.looks(replace(setup, shadow=paired, share=0.0 if paired else 0.5), seed)


def _one(job: tuple[Row, bool, int]) -> Outcome:
    row, paired, seed = job
    return run(_inputs(row.setup, paired, seed), paired)


def _limit_threads() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per process: the machine is shared


def outcomes(row: Row, paired: bool, runs: int, seed0: int = 0,
             pool: Pool | None = None) -> list[Outcome]:
    """`runs` experiments, seeds seed0 ...; with a pool, half of them in its one worker while
    this process runs the other half (one extra process at most)."""
    jobs = [(row, paired, seed0 + i) for i in range(runs)]
    if pool is None:
        return [_one(j) for j in jobs]
    theirs = pool.map_async(_one, jobs[1::2], chunksize=4)
    mine = [_one(j) for j in jobs[0::2]]
    out: list[Outcome] = []
    for a, b in zip_longest(mine, theirs.get()):
        out += [o for o in (a, b) if o is not None]
    return out


def rate(hits: int, n: int, bound: bool = True) -> str:
    text = f"{hits}/{n} = {100 * hits / n:.1f}%"
    return f"{text} (<= {100 * clopper_pearson_upper(hits, n):.1f}%)" if bound else text


def found_by(values: list[float | None], share: float = 0.8) -> str:
    """The labelled frauds by which `share` of the runs had it (a run that never did: inf)."""
    xs = sorted(float("inf") if v is None else v for v in values)
    x = xs[min(len(xs) - 1, int(np.ceil(share * len(xs))) - 1)]
    return "not within the run" if not np.isfinite(x) else f"{x:,.0f}"


def line(row: Row, paired: bool, res: list[Outcome]) -> dict[str, str]:
    n, aa = len(res), row.kind == AA
    def count(f: Callable[[Outcome], bool]) -> int:
        return sum(1 for o in res if f(o))
    verdicts = count(lambda o: o.verdict in DIFFERENT)
    rb = [o.rollback_decisions for o in res if o.rollback_decisions is not None]
    frauds = "-"
    if row.kind == BETTER:
        frauds = f"80% promoted by {found_by([o.promoted_frauds for o in res])}"
    elif row.kind == WORSE:
        frauds = f"80% verdict by {found_by([o.verdict_frauds for o in res])}"
    return {
        "scenario": row.name, "mode": "paired" if paired else "split", "runs": str(n),
        "better/worse verdicts": rate(verdicts, n, aa) if aa else (
            f"{count(lambda o: o.verdict == 'challenger_better')} better, "
            f"{count(lambda o: o.verdict == 'challenger_worse')} worse"),
        "label_bias": rate(count(lambda o: o.label_bias), n, False),
        "rollbacks": rate(count(lambda o: o.rollback is not None), n, aa),
        "promotions": rate(count(lambda o: o.promoted is not None), n,
                           row.kind != BETTER),
        "label-blind better/worse": rate(count(lambda o: o.before in DIFFERENT), n, aa),
        "labelled frauds": frauds,
        "rollback rules": ", ".join(f"{k} {v}" for k, v in sorted(Counter(
            o.rollback for o in res if o.rollback).items())) or "-",
        "median decisions at rollback": f"{np.median(rb):,.0f}" if rb else "-",
        "median labelled frauds": f"{np.median([o.frauds for o in res]):,.0f}",
    }


def markdown(lines: list[dict[str, str]]) -> str:
    cols = list(lines[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(x[c] for c in cols) + " |" for x in lines]
    return "\n".join(out)


def table(runs: int, processes: int, quick: bool = False, seed0: int = 0) -> str:
    """The table, each line printed to stderr as soon as it is measured."""
    lines: list[dict[str, str]] = []
    with _pool(processes) as pool:
        for row in rows(quick):
            for paired in row.modes:
                start = time.time()
                lines.append(line(row, paired, outcomes(row, paired, runs, seed0, pool)))
                print(f"{markdown(lines).splitlines()[-1]}  [{time.time() - start:.0f} s]",
                      file=sys.stderr, flush=True)
    return markdown(lines)


@contextmanager
def _pool(processes: int) -> Iterator[Pool | None]:
    if processes <= 1:
        yield None
        return
    with get_context("spawn").Pool(1, initializer=_limit_threads) as pool:
        yield pool


def margins(runs: int, processes: int, seed0: int = 0) -> str:
    """Label-blind paired A/A verdicts as the declines' label rate falls: how big a gap
    label_bias_margin must catch at this scale (frauds and legit declines reviewed alike)."""
    lines = []
    with _pool(processes) as pool:
        for q in (1.0, 0.95, 0.9, 0.8, 0.6, 0.3):
            mech = LabelMechanics(approved_fraud=1.0, declined_fraud=q, declined_legit=q)
            row = Row(f"declines labelled {q:.0%}", AA, cohorts.Setup(labels=mech, looks=12))
            res = outcomes(row, True, runs, seed0, pool)
            hits = sum(1 for o in res if o.before in DIFFERENT)
            lines.append({"declined label rate": f"{q:.0%}", "gap": f"{1 - q:.2f}",
                          "label-blind paired better/worse": rate(hits, len(res)),
                          "label_bias reported": rate(sum(o.label_bias for o in res),
                                                      len(res), False)})
    return markdown(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations.labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="experiments per row and mode")
    parser.add_argument("--processes", type=int, default=2,
                        help="1, or 2: this one and one worker (a shared 2-core box)")
    parser.add_argument("--seed", type=int, default=0, help="seeds seed .. seed + runs - 1")
    parser.add_argument("--quick", action="store_true", help="small populations (tests)")
    parser.add_argument("--margins", action="store_true", help="the label_bias margin sweep")
    args = parser.parse_args(argv)
    _limit_threads()
    start = time.time()
    if args.margins:
        print(margins(args.runs, args.processes, args.seed))
    else:
        print(table(args.runs, args.processes, args.quick, args.seed))
    print(f"\n{time.time() - start:.0f} s, {args.processes} process(es)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

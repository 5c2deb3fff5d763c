"""A/A and A/B experiments on simulated traffic, judged by the code the service runs.

`python -m simulations.ab [--runs N]` (or `make simulate`) prints the table in
docs/statistics.md. Each run draws a population of users (heavy-tailed activity, fraud
clustered on taken-over cards, per-user catch probabilities, delayed
labels: simulations/traffic.py),
assigns users with the service's hash (fraud/assignment.py), and at every look turns the
per-user aggregates into `ArmPeriod`s and calls `fraud.experiment.live.judge`, the function behind
/ab-stats and the guardrail loop, carrying its state (the sequence memory) from look to look.
The "before" columns judge the same looks with the decision-level rules this replaced
(simulations/baseline.py). Latency is not simulated (both arms share each router call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from multiprocessing import get_context

from fraud.config import ABConfig, load_ab_config
from fraud.experiment.look import judge
from fraud.experiment.state import ExperimentState
from fraud.stats.aggregates import ArmPeriod
from simulations import baseline as before
from simulations.traffic import ArmUsers, Look, ModelBehaviour, Population, Scenario, looks

EXPECTED_SHARE = 0.5
# False positives cluster moderately on some legit users (travellers, big spenders); a
# model's catch of one taken-over card's fraud clusters strongly (traffic.ModelBehaviour).
HEALTHY = ModelBehaviour(fp_concentration=20.0)


@dataclass(frozen=True)
class Outcome:
    """What one simulated experiment ended with."""

    srm: bool  # the users test flagged a mismatch at some look
    verdict: str  # the final (latched) primary verdict
    rollback: str | None  # the first guardrail breach, if any
    rollback_at: int | None  # challenger rows (decisions + errors) at that look
    before_srm: bool
    before_difference: bool
    before_rollback: bool


def periods_of(look: Look) -> dict[int, dict[str, ArmPeriod]]:
    def arm(u: ArmUsers) -> ArmPeriod:
        return ArmPeriod.from_users(u.decisions, u.flags, u.errors, u.labelled, u.tp, u.fp,
                                    u.fn, u.tn)
    return {1: {name: arm(u) for name, u in look.arms.items()}}


def run(scenario: Scenario, seed: int, cfg: ABConfig, expected_share: float = EXPECTED_SHARE
        ) -> Outcome:
    """One experiment: judge every look as the service's guardrail loop does."""
    state = ExperimentState(period=1, period_share=expected_share)
    srm = before_srm = before_diff = before_roll = False
    rollback: str | None = None
    rollback_at: int | None = None
    for look in looks(scenario, seed):
        periods = periods_of(look)
        seen = judge(cfg, state, periods)
        state = seen.state
        srm = srm or bool(seen.sample_ratio and seen.sample_ratio["mismatch"])
        if seen.breaches and rollback is None:
            rollback = seen.breaches[0].split(":")[0].split(" (")[0]
            b = periods[1]["model_b"]
            rollback_at = b.decisions + b.errors
        old = before.judge(periods[1]["model_a"], periods[1]["model_b"], expected_share)
        before_srm, before_diff = before_srm or old.srm, before_diff or old.difference
        before_roll = before_roll or old.rollback
    return Outcome(srm, seen.primary["verdict"], rollback, rollback_at, before_srm,
                   before_diff, before_roll)


def scenarios(scale: float = 1.0) -> list[tuple[Scenario, str]]:
    """The table's rows: (scenario, what it checks). `scale` shrinks decisions for tests."""
    def n(x: int) -> int:
        return max(1000, int(x * scale))

    aa = "A/A"

    def sc(name: str, population: Population, b: ModelBehaviour = HEALTHY, **kw: object
           ) -> Scenario:
        return Scenario(name, population, model_a=HEALTHY, model_b=b, **kw)  # type: ignore

    return [
        (sc("A/A 40 users, equal activity", Population(40, 0.0), decisions=n(5000)), aa),
        (sc("A/A 40 users, heavy-tailed", Population(40, 1.5), decisions=n(5000)), aa),
        (sc("A/A 5k users, equal activity", Population(5000, 0.0), decisions=n(100_000)), aa),
        (sc("A/A 5k users, heavy-tailed", Population(5000, 1.5), decisions=n(100_000)), aa),
        (sc("A/A 20k users, heavy-tailed, 20% share", Population(20_000, 1.5),
            true_share=0.2, decisions=n(200_000)), "A/A 20%"),
        (sc("A/A 5k users, label delay 20 d, maturity 30 d, 90 days",
            Population(5000, 1.5, duration_days=90.0), decisions=n(100_000),
            label_delay_days=20.0, fraud_label_share=0.9, maturity_days=30.0), aa),
        (sc("recall 0.80 vs 0.70, 100k users, activity sigma 1", Population(100_000, 1.0),
            replace(HEALTHY, recall=0.70), decisions=n(1_000_000)), "worse"),
        (sc("45/55 assignment fault, 5k users", Population(5000, 1.5), true_share=0.45,
            decisions=n(100_000)), "srm"),
        (sc("challenger flags 3x (FPR 1% -> 4.5%), 20k users, sigma 1", Population(20_000, 1.0),
            replace(HEALTHY, false_positive_rate=0.045), decisions=n(200_000)), "flag"),
        (sc("challenger errors 5% of rows, 5k users", Population(5000, 1.5),
            replace(HEALTHY, error_rate=0.05), decisions=n(100_000)), "error"),
    ]


def _one(args: tuple[Scenario, int, ABConfig, float]) -> Outcome:
    return run(*args)


def outcomes(scenario: Scenario, runs: int, cfg: ABConfig, seed0: int = 0,
             processes: int = 1, expected_share: float | None = None) -> list[Outcome]:
    """`runs` experiments with seeds seed0, seed0+1, ... (in `processes` processes)."""
    share = scenario.true_share if expected_share is None else expected_share
    jobs = [(scenario, seed0 + i, cfg, share) for i in range(runs)]
    if processes <= 1:
        return [_one(j) for j in jobs]
    with get_context("spawn").Pool(processes) as pool:
        return pool.map(_one, jobs, chunksize=max(1, runs // (4 * processes)))


def rate(flags: Iterable[bool]) -> float:
    xs = list(flags)
    return sum(xs) / len(xs) if xs else 0.0


def row(name: str, kind: str, res: list[Outcome]) -> dict[str, str]:
    """One line of the table."""
    diff = rate(o.verdict in ("challenger_better", "challenger_worse") for o in res)
    at = [o.rollback_at for o in res if o.rollback_at is not None]
    return {
        "scenario": name, "checks": kind, "runs": str(len(res)),
        "SRM alarm": f"{rate(o.before_srm for o in res):.1%} -> {rate(o.srm for o in res):.1%}",
        "primary difference": f"{rate(o.before_difference for o in res):.1%} -> {diff:.1%}",
        "worse verdict": f"{rate(o.verdict == 'challenger_worse' for o in res):.1%}",
        "any rollback": (f"{rate(o.before_rollback for o in res):.1%} -> "
                         f"{rate(o.rollback is not None for o in res):.1%}"),
        "median challenger rows at rollback": f"{statistics.median(at):,.0f}" if at else "-",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="experiments per scenario")
    parser.add_argument("--power-runs", type=int, default=100,
                        help="experiments per A/B scenario (the 100k-user one is slow)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="decisions multiplier")
    args = parser.parse_args(argv)
    cfg = load_ab_config()
    lines = []
    for scenario, kind in scenarios(args.scale):
        expected = EXPECTED_SHARE if kind == "srm" else None  # the fault: 45% vs 50% expected
        runs = args.runs if kind.startswith("A/A") else args.power_runs
        lines.append(row(scenario.name, kind, outcomes(scenario, runs, cfg,
                                                       processes=args.processes,
                                                       expected_share=expected)))
        print(f"  done: {scenario.name}", file=sys.stderr, flush=True)
    cols = list(lines[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for line in lines:
        print("| " + " | ".join(line[c] for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

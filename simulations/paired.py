"""Paired (shadow) against split: how many labelled frauds each needs for the same recall gap,
and the paired test's false "difference" rate in A/A, through the code the service runs.

    python -m simulations.paired [--runs 200] [--seed 7]

Each run draws users (Poisson transactions, a per-user fraud rate) and, per fraud, whether each
model catches it: model B's "hardness" draw equals model A's with probability `agreement`
(models trained on the same data mostly agree), else it is fresh. Users arrive over `looks`
looks; at each look the split test (fraud.stats.users.primary on per-user arm aggregates, users
split 50/50 by their index) and the paired test (fraud.stats.paired.paired on the same users, both
models on every transaction) update their memories. Reported: labelled frauds seen when each
reached a final verdict, and how often A/A gave anything but collecting / no_difference.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from fraud.config import GuardrailConfig, StatsSettings
from fraud.experiment.guardrails import paired_flag_rate_breach
from fraud.stats.aggregates import FIELDS, ArmPeriod, PairedUsers
from fraud.stats.paired import Costs, paired, paired_look
from fraud.stats.sequential import Memory
from fraud.stats.users import primary


@dataclass(frozen=True)
class World:
    users: int = 30_000
    txns_per_user: float = 4.0
    fraud_rate: float = 0.03
    recall_a: float = 0.70
    recall_b: float = 0.70
    fp_rate: float = 0.01
    agreement: float = 0.85
    looks: int = 40


def draw(w: World, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per user: transactions, frauds, and both models' tp/fp counts (and both-caught)."""
    n = rng.poisson(w.txns_per_user, w.users) + 1
    rate = rng.beta(1.0, (1.0 - w.fraud_rate) / w.fraud_rate, w.users)  # heterogeneous users
    fraud = rng.binomial(n, rate)
    out = {k: np.zeros(w.users) for k in ("tp_a", "tp_b", "tp_both", "fp_a", "fp_b")}
    for i in np.flatnonzero(fraud):
        h = rng.random(fraud[i])
        h_b = np.where(rng.random(fraud[i]) < w.agreement, h, rng.random(fraud[i]))
        ca, cb = h < w.recall_a, h_b < w.recall_b
        out["tp_a"][i], out["tp_b"][i], out["tp_both"][i] = ca.sum(), cb.sum(), (ca & cb).sum()
    legit = n - fraud
    g = rng.random(w.users)
    out["fp_a"] = rng.binomial(legit, w.fp_rate)
    out["fp_b"] = np.where(g < w.agreement, out["fp_a"], rng.binomial(legit, w.fp_rate))
    return {"n": n.astype(float), "fraud": fraud.astype(float), **out}


def paired_users(d: dict[str, np.ndarray], upto: int) -> PairedUsers:
    cols = {k: np.zeros(upto) for k in FIELDS}
    for k in ("n", "fraud", "tp_a", "tp_b", "tp_both", "fp_a", "fp_b"):
        cols[k] = d[k][:upto].astype(float)
    cols["mature"] = cols["n"]
    cols["flag_a"], cols["flag_b"] = cols["tp_a"] + cols["fp_a"], cols["tp_b"] + cols["fp_b"]
    cols["disagree"] = cols["tp_a"] + cols["tp_b"] - 2 * cols["tp_both"]
    return PairedUsers(**cols)


def split_periods(d: dict[str, np.ndarray], upto: int) -> dict[int, dict[str, ArmPeriod]]:
    idx = np.arange(upto)
    arms = {}
    for arm, mask, sfx in (("model_a", idx % 2 == 0, "a"), ("model_b", idx % 2 == 1, "b")):
        n, f, tp, fp = (d[k][:upto][mask] for k in ("n", "fraud", f"tp_{sfx}", f"fp_{sfx}"))
        arms[arm] = ArmPeriod.from_users(n, tp + fp, np.zeros_like(n), n, tp, fp, f - tp,
                                         n - f - fp)
    return {0: arms}


def run(w: World, seed: int, s: StatsSettings,
        g: GuardrailConfig | None = None) -> dict[str, tuple[str, float]]:
    """{'paired'|'split': (final verdict, labelled frauds when reached or at the end)}, and
    with `g` 'guardrail': the first shadow-mode rollback reason (flag rate or worse), if any,
    judged at every look as the service judges it."""
    rng = np.random.default_rng(seed)
    d = draw(w, rng)
    mem = {"paired": Memory(), "split": Memory()}
    reached: dict[str, tuple[str, float]] = {}
    empty = np.zeros((0, 5))
    for look in range(1, w.looks + 1):
        upto = w.users * look // w.looks
        frauds = float(d["fraud"][:upto].sum())
        pairs = paired_users(d, upto)
        _, mem["paired"] = paired(pairs, empty, s, "recall", Costs(), mem["paired"])
        if g is not None and "guardrail" not in reached:
            worse = paired_look(pairs, s, "recall", Costs(), g.alpha_worse)
            alarm = paired_flag_rate_breach(pairs, g) or (
                "worse" if worse["verdict"] == "challenger_worse" else None)
            if alarm:
                reached["guardrail"] = (alarm, frauds)
        _, mem["split"] = primary(split_periods(d, upto), s, mem["split"])
        for name, m in mem.items():
            if name not in reached and m.verdict != "collecting":
                reached[name] = (m.verdict, frauds)
    total = float(d["fraud"].sum())
    out = {name: reached.get(name, ("collecting", total)) for name in mem}
    if "guardrail" in reached:
        out["guardrail"] = reached["guardrail"]
    return out


def table(runs: int, seed: int) -> str:
    s, g = StatsSettings(), GuardrailConfig()
    medians: dict[tuple[str, str], float] = {}
    lines = ["| scenario | test | verdicts (better / worse / no diff / collecting) | "
             "median labelled frauds at verdict |", "|---|---|---|---|"]
    for name, w in (("A/A recall 0.70 vs 0.70", World()),
                    ("A/B recall 0.70 vs 0.76", World(recall_b=0.76)),
                    ("A/B recall 0.70 vs 0.60 (worse)", World(recall_b=0.60))):
        results = [run(w, seed + i, s, g) for i in range(runs)]
        alarms = sum("guardrail" in r for r in results)
        lines.append(f"| {name} | paired guardrails (flag rate, worse) | rollbacks in "
                     f"{alarms} of {runs} runs | |")
        for test in ("paired", "split"):
            verdicts = [r[test][0] for r in results]
            counts = [verdicts.count(v) for v in ("challenger_better", "challenger_worse",
                                                  "no_difference", "collecting")]
            at = [r[test][1] for r in results if r[test][0] != "collecting"]
            median = f"{np.median(at):,.0f}" if at else "none"
            lines.append(f"| {name} | {test} | {' / '.join(map(str, counts))} | {median} |")
            medians[(name, test)] = float(np.median(at)) if at else float("nan")
    ab = "A/B recall 0.70 vs 0.76"
    ratio = medians[(ab, "split")] / medians[(ab, "paired")]
    lines.append(f"\nsplit needs {ratio:.1f}x the labelled frauds paired needs (medians, A/B)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations.paired",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(table(args.runs, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

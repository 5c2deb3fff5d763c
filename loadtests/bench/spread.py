"""Several bench runs side by side: each summary figure's value in every run, and the spread.

    python -m loadtests.bench.spread docs/bench/2026-12-06-2core-1.json \\
        docs/bench/2026-12-06-2core-2.json docs/bench/2026-12-06-2core-3.json

Each run's table is rebuilt from its figures (as `python -m loadtests.bench.table`), then per
figure: the measured value and the ratio of each run, the ratios' min-max, and how many runs
met the target. A figure missing from a run (an older results file) shows "-".
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from loadtests.bench.report import markdown_table
from loadtests.bench.results import Results, load
from loadtests.bench.table import rebuild

RATIO = re.compile(r"^(\d+(?:\.\d+)?)x$")


def _ratio(text: str) -> float | None:
    m = RATIO.match(text.strip())
    return float(m.group(1)) if m else None


def _met(target: str) -> bool | None:
    if not target:
        return None
    if "MISSED" in target:
        return False
    return True if target.rstrip().endswith("ok") else None


def spread_rows(runs: list[Results]) -> list[dict[str, str]]:
    """One row per figure of the first run (then any others), in table order."""
    tables = [{r["figure"]: r for r in rebuild(run)} for run in runs]
    figures: list[str] = []
    for table in tables:
        figures += [f for f in table if f not in figures]
    rows = []
    for figure in figures:
        cells = [t.get(figure) for t in tables]
        ratios = [x for x in (_ratio(c["ratio"]) for c in cells if c) if x is not None]
        met = [m for m in (_met(c["target"]) for c in cells if c) if m is not None]
        row = {"figure": figure}
        for i, c in enumerate(cells, 1):
            row[f"run {i}"] = "-" if c is None else (
                c["measured"] + (f" ({c['ratio']})" if c["ratio"] not in ("", "-") else ""))
        row["ratio min-max"] = (f"{min(ratios):.2f}-{max(ratios):.2f}x" if ratios else "-")
        row["target met"] = f"{sum(met)} of {len(met)}" if met else "-"
        rows.append(row)
    return rows


def render(runs: list[Results], paths: list[Path]) -> str:
    rows = spread_rows(runs)
    columns = ["figure", *[f"run {i}" for i in range(1, len(runs) + 1)], "ratio min-max",
               "target met"]
    pairs = enumerate(zip(paths, runs, strict=True), 1)
    heads = "\n".join(f"- run {i}: `{p}`, commit {(r.git.get('commit') or '?')[:10]}, "
                      f"finished {r.finished}" for i, (p, r) in pairs)
    return heads + "\n\n" + markdown_table(rows, columns)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench.spread",
                                description="Several bench results files side by side.")
    p.add_argument("results", type=Path, nargs="+")
    args = p.parse_args(argv)
    print(render([load(path) for path in args.results], args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

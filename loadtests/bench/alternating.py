"""The loop shared by the bench's side studies (`python -m loadtests.bench.workers`, `python -m
loadtests.bench.pairs`): settings alternating within each round, so a noisy minute on a shared
machine hurts every setting; each row printed as it comes; the table and the rows written to
`reports/bench/<name>-<timestamp>/<name>.json` (and `--out`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from loadtests.run import ROOT, timestamp

S = TypeVar("S")
Rows = list[dict[str, Any]]


def report_dir(name: str, reports: Path | None = None) -> Path:
    out = (reports or ROOT / "reports" / "bench") / f"{name}-{timestamp()}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def alternate(name: str, argv: Sequence[str] | None, rounds: int, settings: Iterable[S],
              measure: Callable[[S, Path, int], Rows], table: Callable[[Rows], str],
              also: Path | None = None, reports: Path | None = None) -> Rows:
    """`measure(setting, report dir, round)` for every round and setting; the table printed and
    written with the rows and the command line."""
    out = report_dir(name, reports)
    order = list(settings)
    rows: Rows = []
    for r in range(rounds):
        for setting in order:
            got = measure(setting, out, r)
            for row in got:
                row["round"] = r
                print(json.dumps(row), flush=True)
            rows += got
    text = table(rows)
    print("\n" + text)
    args = sys.argv[1:] if argv is None else list(argv)
    payload = json.dumps({"command": f"python -m loadtests.bench.{name} " + " ".join(args),
                          "rows": rows, "table": text}, indent=1)
    for path in [out / f"{name}.json", *([also] if also else [])]:
        path.write_text(payload)
    return rows

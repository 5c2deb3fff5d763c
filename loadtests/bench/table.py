"""The markdown table of a committed bench results file, rebuilt from its figures.

    python -m loadtests.bench.table docs/bench/2026-11-27-2core.json            # the table
    python -m loadtests.bench.table docs/bench/2026-11-27-2core.json --detail   # + phases
    python -m loadtests.bench.table docs/bench/2026-11-27-2core.json --check    # exit 1 if
        # the table rebuilt from the phases differs from the one the run printed

The table is recomputed from the file's phases, baseline and services (not copied from its
`summary`), so a README table pasted from this output traces back to the measured figures.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadtests.bench.report import (
    DETAIL_COLUMNS,
    SERVICE_COLUMNS,
    SUMMARY_COLUMNS,
    TARGETS,
    detail_rows,
    markdown_table,
    service_rows,
    summary_rows,
)
from loadtests.bench.results import Results, load


@contextmanager
def targets_of(results: Results) -> Iterator[None]:
    """The run's own targets in force while its table is rebuilt (an older run's were
    issue 14's), the current ones again after."""
    saved = dict(TARGETS)
    TARGETS.update(results.targets)
    try:
        yield
    finally:
        TARGETS.clear()
        TARGETS.update(saved)


def rebuild(results: Results) -> list[dict[str, str]]:
    """The summary rows, recomputed from the results' measured figures and its targets."""
    c = results.configs
    with targets_of(results):
        return summary_rows(results.phases, results.raw_model, results.settings,
                            c["on"] or "", c.get("off"), c.get("shadow"), results.services,
                            before=c.get("before"), postgres=c.get("postgres"))


def header(results: Results) -> str:
    m, g = results.machine, results.git
    commit = (g.get("commit") or "?")[:10] + (" (uncommitted changes)" if g.get("dirty") else "")
    return (f"{m.get('cpus')} CPUs ({m.get('cpu_model') or 'unknown CPU'}), Python "
            f"{m.get('python')}, BentoML {m.get('bentoml')}; commit {commit}; "
            f"`{results.command}`; finished {results.finished}")


def render(results: Results, detail: bool = False) -> str:
    text = header(results) + "\n\n" + markdown_table(rebuild(results), SUMMARY_COLUMNS)
    if detail:
        text += ("\n\n" + markdown_table(service_rows(results.services), SERVICE_COLUMNS)
                 + "\n\n" + markdown_table(detail_rows(results.phases), DETAIL_COLUMNS))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench.table",
                                description="Print the markdown table of a bench results file.")
    p.add_argument("results", type=Path, help="a bench.json (e.g. docs/bench/<date>-<n>core.json)")
    p.add_argument("--detail", action="store_true", help="also the per-service and per-phase "
                                                         "tables")
    p.add_argument("--check", action="store_true", help="exit 1 when the rebuilt table differs "
                                                        "from the one stored in the file")
    args = p.parse_args(argv)
    results = load(args.results)
    print(render(results, args.detail))
    if args.check and rebuild(results) != results.summary:
        print(f"\n{args.results}: the table rebuilt from the figures differs from the stored "
              "summary", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The gate report as Markdown: the delivery workflow's job summary, and `make pipeline`'s.

    python -m deploy.gate_summary reports/gate/gate_report.json >> "$GITHUB_STEP_SUMMARY"

A missing or unreadable report is itself a failure (exit 1): the gate fails closed, and so
does its summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

METRICS = ("f1", "precision", "recall", "roc_auc")


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """Verdict, one row per model, and every failed check with its value, floor and gap."""
    verdict = "PASSED" if report.get("passed") else "FAILED"
    lines = [f"## Gate: **{verdict}**", "",
             "| arm | role | model | passed | " + " | ".join(METRICS) + " |",
             "|---|---|---|---|" + "---|" * len(METRICS)]
    for tag, model in report.get("models", {}).items():
        overall = model.get("evaluation", {}).get("overall", {})
        lines.append(f"| {model.get('arm', '')} | {model.get('role', '')} | `{tag}` | "
                     f"{'yes' if model.get('passed') else '**no**'} | "
                     + " | ".join(_num(overall.get(m)) for m in METRICS) + " |")
    failed = [c for c in report.get("checks", []) if not c.get("passed")]
    checks = report.get("checks", [])
    lines += ["", f"{len(checks) - len(failed)} of {len(checks)} checks passed."]
    if failed:
        lines += ["", "| model | check | value | op | floor | gap | detail |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| `{c.get('model', '')}` | {c.get('name', '')} | {_num(c.get('value'))} | "
                  f"{c.get('op', '')} | {_num(c.get('floor'))} | {_num(c.get('gap'))} | "
                  f"{str(c.get('detail', '')).replace('|', '/')} |" for c in failed]
    for error in report.get("errors", []):
        lines.append(f"- error: {error}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.gate_summary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.report.read_text())
    except (OSError, ValueError) as exc:
        print(f"## Gate: **FAILED**\n\nno readable gate report at `{args.report}`: {exc}")
        return 1
    print(markdown(report), end="")
    return 0 if report.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())

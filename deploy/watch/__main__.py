"""python -m deploy.watch: judge a fresh rollout on Prometheus; undo it on a breach.

Exit 0 pass, 1 breach (rolled back; 3 if the undo itself failed), 2 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path

from deploy.watch import __doc__ as RULE
from deploy.watch import rules
from deploy.watch.judge import FAIL, INCONCLUSIVE, Verdict, describe, watch
from deploy.watch.prometheus import query
from deploy.watch.rollback import undo, undo_command

EXIT = {"pass": 0, FAIL: 1, INCONCLUSIVE: 2}
UNDO_FAILED = 3


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.watch", description=RULE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prometheus", required=True, help="base URL, e.g. http://prometheus:9090")
    p.add_argument("--namespace", required=True, help="namespace of the Deployment")
    p.add_argument("--deployment", default="fraudserve")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the window")
    p.add_argument("--interval", type=float, default=15.0, help="seconds between polls")
    p.add_argument("--match", default=None,
                   help='label matcher added to every fraud_* selector, e.g. '
                        '\'namespace="fraudserve"\' (default: namespace="<--namespace>"; '
                        "'' for none)")
    p.add_argument("--rules", default=",".join(rules.DEFAULT_RULES),
                   help="comma-separated alert names from configs/alerts.yml")
    p.add_argument("--hold", type=float, default=None,
                   help="seconds a condition must hold (default: each rule's own `for`)")
    p.add_argument("--report", type=Path, help="write the decision as JSON here")
    p.add_argument("--no-undo", action="store_true", help="judge only; never roll back")
    return p.parse_args(argv)


def summary(verdict: Verdict, checks: list[rules.Check], undo_line: str | None) -> str:
    """The decision as Markdown (the GitHub job summary)."""
    lines = [f"## Post-deploy watch: **{verdict.outcome.upper()}**", "", verdict.reason, "",
             "| rule | hold | last result |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.hold_s:g}s | "
              f"{describe(verdict.last.get(c.name)).replace('|', '/')} |"
              for c in checks]
    lines += ["", f"{verdict.polls} polls, {verdict.answered} answered, "
              f"{verdict.seconds:.0f}s."]
    if undo_line:
        lines += ["", f"Rolled back: `{undo_line}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    matcher = f'namespace="{args.namespace}"' if args.match is None else args.match
    names = tuple(n.strip() for n in args.rules.split(",") if n.strip())
    checks = rules.load(names, matcher=matcher, hold_s=args.hold)
    verdict = watch(checks, partial(query, args.prometheus), args.minutes, args.interval)
    print(f"watch: {verdict.outcome}: {verdict.reason}")
    code = EXIT[verdict.outcome]
    record: dict = {**asdict(verdict), "checks": [c.__dict__ for c in checks], "undo": None}
    undo_line = None
    if verdict.outcome == FAIL and not args.no_undo:
        undo_line = " ".join(undo_command(args.deployment, args.namespace))
        print(f"watch: rolling back: {undo_line}")
        try:
            done = undo(args.deployment, args.namespace)
            record["undo"] = {"command": undo_line, "returncode": done.returncode,
                              "output": (done.stdout + done.stderr).strip()}
            print(record["undo"]["output"])
            if done.returncode != 0:
                code = UNDO_FAILED
        except (OSError, FileNotFoundError) as exc:
            record["undo"] = {"command": undo_line, "error": str(exc)}
            print(f"watch: rollback failed: {exc}", file=sys.stderr)
            code = UNDO_FAILED
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(record, indent=2, default=str))
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as out:
            out.write(summary(verdict, checks, undo_line))
    return code


if __name__ == "__main__":
    sys.exit(main())

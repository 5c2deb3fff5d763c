"""python -m deploy.watch: judge a fresh rollout's new pods on Prometheus; undo on failure.

Exit 0 pass, 1 fail (rolled back; 3 if the undo itself failed), 2 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

from deploy.watch import __doc__ as RULE
from deploy.watch import rules
from deploy.watch.checks import Limits, Measure, Selection
from deploy.watch.judge import FAIL, INCONCLUSIVE, PASS, Verdict, watch
from deploy.watch.kube import new_template_hash
from deploy.watch.prometheus import PrometheusError, query
from deploy.watch.rollback import undo, undo_command

EXIT = {PASS: 0, FAIL: 1, INCONCLUSIVE: 2}
UNDO_FAILED = 3


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.watch", description=RULE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prometheus", required=True, help="base URL, e.g. http://prometheus:9090")
    p.add_argument("--namespace", required=True, help="namespace of the Deployment")
    p.add_argument("--deployment", default="fraudserve")
    p.add_argument("--new", default=None,
                   help='label matcher of the new pods, e.g. \'pod_template_hash="5d8f7c9b4"\'')
    p.add_argument("--new-pods", choices=("auto",), default=None,
                   help="auto: the Deployment's current pod-template-hash, read with kubectl")
    p.add_argument("--old", default=None,
                   help="label matcher of the old pods (default: the negation of --new)")
    p.add_argument("--no-namespace-label", action="store_true",
                   help="series carry no namespace label (a Prometheus outside Kubernetes)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the window")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between polls")
    p.add_argument("--threshold", type=int, default=3,
                   help="failed polls that fail the release (Flagger's threshold)")
    p.add_argument("--error-limit", type=int, default=4,
                   help="unanswered polls in a row that stop the watch, inconclusive")
    p.add_argument("--window", default="1m", help="rate window of each measurement")
    p.add_argument("--min-requests", type=float, default=20,
                   help="requests the new pods must serve in the window for a verdict")
    p.add_argument("--max-5xx", type=float, default=0.05, help="largest 5xx share allowed")
    p.add_argument("--max-p95", type=float, default=0.25,
                   help="largest p95 of POST /predict allowed, seconds")
    p.add_argument("--rules", default=",".join(rules.DEFAULT_RULES),
                   help="comma-separated alert names from configs/alerts.yml ('' for none)")
    p.add_argument("--since", type=float, default=None,
                   help="unix time the deploy started (default: now); rules already firing "
                        "then are not the release's fault")
    p.add_argument("--report", type=Path, help="write the decision as JSON here")
    p.add_argument("--no-undo", action="store_true", help="judge only; never roll back")
    return p.parse_args(argv)


def negate(matcher: str) -> str:
    """'a="x"' -> 'a!="x"'; the old pods are the namespace's others."""
    match = re.fullmatch(r'\s*(\w+)\s*=\s*("[^"]*")\s*', matcher)
    if not match:
        raise SystemExit(f"--old is needed: cannot negate --new {matcher!r}")
    return f"{match[1]}!={match[2]}"


def exempt(measure: Measure, prom: str, since: float) -> set[str]:
    """The rules that fired in the namespace (any pod) when the deploy started."""
    ns = measure.selection.namespace
    found = set()
    for rule in measure.rules:
        expr = rules.scope(rule.expr, f'namespace="{ns}"' if ns else None)
        try:
            if query(prom, expr, at=since):
                found.add(rule.name)
        except PrometheusError:
            continue  # unknown: judged as any other rule
    return found


def summary(verdict: Verdict, selection: Selection, excused: set[str],
            undo_line: str | None) -> str:
    """The decision as Markdown (the GitHub job summary)."""
    lines = [f"## Post-deploy watch: **{verdict.outcome.upper()}**", "", verdict.reason, "",
             f"New pods: `{selection.new}`; old pods: `{selection.old or '-'}`", "",
             "| check | state | new pods | old pods | note |", "|---|---|---|---|---|"]
    for o in verdict.last:
        fmt = [("-" if o[k] is None else f"{o[k]:.4g}") for k in ("new", "old")]
        lines.append(f"| {o['name']} | {o['state']} | {fmt[0]} | {fmt[1]} | "
                     f"{o['detail'].replace('|', '/')} |")
    counts = ", ".join(f"{v} {k}" for k, v in verdict.counts.items() if v)
    lines += ["", f"{verdict.polls} polls ({counts}), {verdict.seconds:.0f}s."]
    if excused:
        lines += ["", f"Firing before the deploy, not held against it: {', '.join(excused)}."]
    if undo_line:
        lines += ["", f"Rolled back: `{undo_line}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    since = time.time() if args.since is None else args.since
    new = args.new
    if args.new_pods == "auto":
        new = f'pod_template_hash="{new_template_hash(args.deployment, args.namespace)}"'
    if not new:
        raise SystemExit("say which pods are new: --new MATCHER or --new-pods auto")
    selection = Selection(new=new, old=args.old or negate(new),
                          namespace=None if args.no_namespace_label else args.namespace)
    names = tuple(n.strip() for n in args.rules.split(",") if n.strip())
    limits = Limits(max_5xx=args.max_5xx, max_p95_s=args.max_p95,
                    min_requests=args.min_requests, window=args.window)
    measure = Measure(selection, limits, rules.load(names, hold_s=0) if names else [])
    prom = partial(query, args.prometheus)
    measure.exempt = exempt(measure, args.prometheus, since)
    if measure.exempt:
        print(f"watch: firing before the deploy, not held against it: "
              f"{', '.join(sorted(measure.exempt))}")
    verdict = watch(lambda: measure.poll(prom), args.minutes, args.interval,
                    threshold=args.threshold, error_limit=args.error_limit)
    print(f"watch: {verdict.outcome}: {verdict.reason}")
    code = EXIT[verdict.outcome]
    record: dict = {**asdict(verdict), "answered": verdict.answered,
                    "selection": asdict(selection), "limits": asdict(limits),
                    "rules": list(names), "exempt": sorted(measure.exempt), "since": since,
                    "undo": None}
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
        except OSError as exc:
            record["undo"] = {"command": undo_line, "error": str(exc)}
            print(f"watch: rollback failed: {exc}", file=sys.stderr)
            code = UNDO_FAILED
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(record, indent=2, default=str))
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as out:
            out.write(summary(verdict, selection, measure.exempt, undo_line))
    return code


if __name__ == "__main__":
    sys.exit(main())

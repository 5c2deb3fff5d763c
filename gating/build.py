"""`python -m gating.build`: `bentoml build` with both gated model tags pinned.

Refuses unless the gate report passed; the report travels inside the bento, where the
service checks it again before becoming ready, and so does the models' card
(reports/build/model_card.json and .md, served at GET /model-card).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from fraud import model_card
from fraud.config import PROJECT_ROOT
from fraud.report.card import to_markdown
from fraud.schema import ARMS
from fraud.serving.card import CARD_FILE
from fraud.serving.readiness import report_path

BUNDLED_REPORT = PROJECT_ROOT / "reports" / "gate" / "gate_report.json"
CARD_MD = CARD_FILE.with_suffix(".md")  # bentofile.yaml includes both


def gated_tags(report: dict) -> dict[str, str]:
    """arm → tag of the models the report passed; raises when the gate did not pass."""
    if not report.get("passed"):
        raise SystemExit("build refused: the gate report did not pass (run `make gate`)")
    tags = {m["arm"]: tag for tag, m in report["models"].items() if m.get("passed")}
    if set(tags) != set(ARMS):
        raise SystemExit(f"build refused: the gate report passes {sorted(tags)} only")
    return tags


def write_card(tags: dict[str, str], report: dict) -> dict:
    """The card of the gated models from their store metadata and the gate report."""
    import bentoml

    models = {arm: {"tag": tag, "metadata": dict(bentoml.models.get(tag).info.metadata)}
              for arm, tag in tags.items()}
    card = model_card.build(models, report, generated_by="`make build` (gating/build.py)")
    CARD_FILE.parent.mkdir(parents=True, exist_ok=True)
    CARD_FILE.write_text(json.dumps(card, indent=2) + "\n")
    CARD_MD.write_text(to_markdown({**card, "source": "build"}))
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gating.build", description=__doc__)
    parser.add_argument("-f", "--bentofile", default=str(PROJECT_ROOT / "bentofile.yaml"),
                        help="bentofile to build (default: bentofile.yaml)")
    parser.add_argument("--tag-file", default=str(PROJECT_ROOT / "reports" / "build" /
                                                   "bento_tag.txt"),
                        help="where to write the built bento's tag")
    args = parser.parse_args(argv)
    source = report_path()
    if not source.exists():
        print(f"build refused: no gate report at {source} (run `make gate`)", file=sys.stderr)
        return 1
    report = json.loads(source.read_text())
    tags = gated_tags(report)
    if source.resolve() != BUNDLED_REPORT.resolve():
        BUNDLED_REPORT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, BUNDLED_REPORT)
    write_card(tags, report)
    env = {**os.environ, "FRAUDSERVE_MODEL_A": tags["model_a"],
           "FRAUDSERVE_MODEL_B": tags["model_b"]}
    bentoml = str(Path(sys.executable).parent / "bentoml")
    out = subprocess.run([bentoml, "build", "-f", args.bentofile, "--output", "tag"],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
        return out.returncode
    match = re.search(r"__tag__:(\S+)", out.stdout)
    if not match:
        print(f"could not read the bento tag from:\n{out.stdout}", file=sys.stderr)
        return 1
    bento = match.group(1)
    info = json.loads(subprocess.run([bentoml, "get", bento, "-o", "json"], env=env,
                                     capture_output=True, text=True, check=True).stdout)
    shipped = sorted({m["tag"] for svc in info.get("services", [])
                      for m in svc.get("models", [])})
    if shipped != sorted(tags.values()):
        print(f"build refused: bento {bento} holds {shipped}, gated {sorted(tags.values())}",
              file=sys.stderr)
        return 1
    Path(args.tag_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.tag_file).write_text(bento + "\n")
    print(f"built {bento} with gated models {tags['model_a']} (model_a), "
          f"{tags['model_b']} (model_b)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

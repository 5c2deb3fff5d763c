"""`python -m training.promote`: make the challenger the champion.

Only when fraud/experiment/promotion.py's rule allows it (the split verdict
`challenger_better`, or in
shadow mode the paired one, and no rollback), unless `--force`. Swaps the MLflow registry
aliases and the role labels in the BentoML store, so `@champion` / `@challenger` in
configs/ab.yaml resolve to the swapped models at the next start (or build). Records the
promotion in the ledger.
"""

from __future__ import annotations

import argparse
import sys

import bentoml

from fraud.config import load_ab_config, load_training_config, mlflow_tracking_uri
from fraud.experiment.live import Experiment
from fraud.experiment.promotion import evidence, promotion_refusal
from fraud.schema import utc_now_iso
from fraud.serving.models import resolve_arms
from fraud.serving.process import ledger_store
from fraud.store.backend import sqlite_path
from fraud.store.writer import Ledger


def set_role(tag: str, role: str) -> None:
    """Rewrite a stored model's role label and metadata (BentoML has no public label update)."""
    model = bentoml.models.get(tag)
    info = model.info
    new = type(info)(tag=info.tag, module=info.module, signatures=info.signatures,
                     labels={**info.labels, "role": role}, options=info.options,
                     metadata={**info.metadata, "role": role}, context=info.context,
                     api_version=info.api_version, creation_time=info.creation_time)
    model._info = new
    model._write_info()


def swap_mlflow_aliases(name: str) -> str:
    """Point `champion` at the challenger's registered version and vice versa."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_tracking_uri())
    old_champion = client.get_model_version_by_alias(name, "champion")
    old_challenger = client.get_model_version_by_alias(name, "challenger")
    client.set_registered_model_alias(name, "champion", old_challenger.version)
    client.set_registered_model_alias(name, "challenger", old_champion.version)
    return f"{name}: champion v{old_champion.version} -> v{old_challenger.version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.promote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true",
                        help="promote whatever the verdict (the reason is recorded)")
    parser.add_argument("--ledger", default=None,
                        help="ledger (path or URL) to read the verdict from "
                             "(default: FRAUDSERVE_LEDGER)")
    args = parser.parse_args(argv)
    ab = load_ab_config()
    arms = resolve_arms(ab)
    store = args.ledger or ledger_store()
    if "://" not in store or store.startswith("sqlite:"):
        path = sqlite_path(store)
        if not path.exists():
            print(f"promote: no ledger at {path}: no experiment to judge", file=sys.stderr)
            if not args.force:
                return 1
    with Ledger(store) as ledger:
        experiment = Experiment(ab, arms, ledger)
        report, _, _ = experiment.report()
        verdict = report["primary"]["verdict"]
        refusal = promotion_refusal(report)
        if refusal and not args.force:
            print(f"promote refused: {refusal}; use --force to override", file=sys.stderr)
            return 1
        champion, challenger = arms["model_a"], arms["model_b"]
        set_role(challenger.tag, "champion")
        set_role(champion.tag, "challenger")
        registry = load_training_config().registered_model_name
        try:
            moved = swap_mlflow_aliases(registry)
        except Exception as exc:  # the store is already swapped: say so, do not hide it
            moved = f"MLflow aliases NOT swapped ({exc.__class__.__name__}: {exc})"
        experiment.end(f"promotion: {challenger.tag} is the champion"
                       f"{' (forced)' if args.force else ''}")
        ledger.set_state("promotion", {"at": utc_now_iso(), "verdict": verdict,
                                       "evidence": evidence(report),
                                       "forced": bool(args.force),
                                       "champion": challenger.tag, "challenger": champion.tag})
    print(f"promoted {challenger.tag} to champion ({'forced, ' if args.force else ''}"
          f"verdict {verdict}); {champion.tag} is now the challenger; {moved}")
    print("restart the service (or `make build`) to serve the new roles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
